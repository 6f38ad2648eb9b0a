"""The attribution logic of :mod:`energaizer_operator.measured` on hand-made Prometheus results."""

from __future__ import annotations

import pytest
from energaizer_operator.measured import (
    Backoff,
    PodRun,
    Reason,
    Series,
    attribute,
    merge_windows,
    parse_matrix,
    pod_run,
    pods_selector,
    unwrap,
    uuids_selector,
)

GPU = {"UUID": "GPU-a", "Hostname": "n1", "modelName": "NVIDIA H100 80GB HBM3", "gpu": "0"}
T0 = 1_700_000_000.0


def run(name: str = "job-0-aaaaa", start: float = T0 + 10, end: float = T0 + 40, gpus: int = 1) -> PodRun:
    return PodRun("ns", name, "n1", start, end, "Succeeded", "job", gpus)


def counter(
    watts: float, t_from: float, t_to: float, step: float = 1.0, labels=None, start_mj: float = 0.0
) -> Series:
    n = int((t_to - t_from) / step) + 1
    samples = tuple((t_from + i * step, start_mj + watts * i * step * 1000.0) for i in range(n))
    return Series({**GPU, **(labels or {})}, samples)


def capture_status_writes(monkeypatch, aijob: dict | None = None) -> list[dict]:
    """The AIJob status patches the measurement sends, in order, with no API server: ``read_aijob``
    answers ``aijob`` (by default one at resourceVersion 1) and Events are dropped."""
    import kopf
    from energaizer_operator import kube

    written: list[dict] = []
    body = aijob if aijob is not None else {"metadata": {"resourceVersion": "1"}}
    monkeypatch.setattr(kube, "read_aijob", lambda ns, name: body)
    monkeypatch.setattr(kube, "patch_aijob_status", lambda ns, name, status, rv=None: written.append(status))
    monkeypatch.setattr(kopf, "event", lambda *a, **k: None)
    return written


async def serve_query(handler, path: str = "/api/v1/query"):
    """A fake Prometheus on localhost answering ``POST path`` with ``handler``: (runner, port); the caller
    cleans the runner up."""
    from aiohttp import web
    from operator_testkit import free_port

    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def test_labels_vanish_at_the_end_and_the_counter_is_interpolated():
    pod = run(start=T0 + 10.5, end=T0 + 40.5)
    full = counter(300.0, T0, T0 + 60)
    before = Series(dict(GPU), tuple(s for s in full.samples if s[0] < pod.started))
    during = Series(
        {**GPU, "namespace": "ns", "pod": pod.name},
        tuple(s for s in full.samples if pod.started <= s[0] < pod.finished),
    )
    after = Series(dict(GPU), tuple(s for s in full.samples if s[0] >= pod.finished))
    out = attribute([pod], [during], [before, during, after], margin_seconds=5)
    assert out.reason is Reason.MEASURED, out.message
    assert out.energy_joules == pytest.approx(300.0 * 30, rel=1e-9)
    assert out.duration_seconds == pytest.approx(30.0)
    assert out.average_power_watts == pytest.approx(300.0)
    assert [d.uuid for d in out.devices] == ["GPU-a"]
    status = out.status("h100-sxm")
    assert status["source"] == "dcgm" and status["gpus"] == 1 and status["gpuType"] == "h100-sxm"


def test_a_counter_reset_counts_from_zero():
    pod = run(start=T0, end=T0 + 20)
    first = counter(100.0, T0, T0 + 10, start_mj=5e9)  # 10 s at 100 W, then a driver reload
    second = counter(100.0, T0 + 11, T0 + 25, start_mj=100_000.0)  # 1 s since the reload at T0 + 10
    labels = {"namespace": "ns", "pod": pod.name}
    series = [Series({**GPU, **labels}, first.samples), Series({**GPU, **labels}, second.samples)]
    out = attribute([pod], series, series, margin_seconds=5)
    assert out.reason is Reason.MEASURED
    assert out.energy_joules == pytest.approx(100.0 * 20, rel=1e-9)
    # the reset interval: at least the new value, at the power of the interval before (20 per second)
    assert unwrap([(0, 50.0), (1, 70.0), (2, 5.0), (3, 15.0)]) == [(0, 0.0), (1, 20.0), (2, 40.0), (3, 50.0)]
    assert unwrap([(0, 50.0), (1, 51.0), (2, 5.0)]) == [(0, 0.0), (1, 1.0), (2, 6.0)]


def test_time_sliced_gpu_is_flagged_not_attributed():
    pod = run()
    mine = counter(200.0, T0, T0 + 60, labels={"namespace": "ns", "pod": pod.name, "vgpu": "0"})
    theirs = counter(200.0, T0, T0 + 60, labels={"namespace": "other", "pod": "x", "vgpu": "1"})
    out = attribute([pod], [mine], [mine, theirs], margin_seconds=5)
    assert out.reason is Reason.SHARED and out.energy_joules is None
    assert "other/x" in out.message and Reason.SHARED.final


def test_a_predecessor_whose_labels_linger_one_scrape_is_not_sharing():
    pod = run(start=T0 + 20, end=T0 + 50)
    full = counter(150.0, T0, T0 + 60)
    prev = Series(
        {**GPU, "namespace": "ns", "pod": "before"}, tuple(s for s in full.samples if s[0] <= T0 + 21)
    )
    mine = Series(
        {**GPU, "namespace": "ns", "pod": pod.name},
        tuple(s for s in full.samples if T0 + 21 < s[0] < T0 + 50),
    )
    rest = Series(dict(GPU), tuple(s for s in full.samples if s[0] >= T0 + 50))
    out = attribute([pod], [mine], [prev, mine, rest], margin_seconds=5)
    assert out.reason is Reason.MEASURED, out.message
    assert out.energy_joules == pytest.approx(150.0 * 30)


def test_mig_rows_are_not_attributed():
    pod = run()
    rows = [
        counter(100.0, T0, T0 + 60, labels={"GPU_I_ID": gi, "GPU_I_PROFILE": "1g.10gb"}) for gi in ("1", "2")
    ]
    mine = Series({**rows[0].labels, "namespace": "ns", "pod": pod.name}, rows[0].samples)
    out = attribute([pod], [mine], [mine, rows[1]], margin_seconds=5)
    assert out.reason is Reason.MIG and out.energy_joules is None


def test_multi_pod_multi_node_job_sums_gpus_and_spans_pods():
    a = run("job-0-aaaaa", start=T0 + 10, end=T0 + 30, gpus=2)
    b = PodRun("ns", "job-1-bbbbb", "n2", T0 + 15, T0 + 45, "Succeeded", "job", 1)
    gpus = {
        ("GPU-a", a.name): 100.0,
        ("GPU-b", a.name): 200.0,
        ("GPU-c", b.name): 300.0,
    }
    discovery, allseries = [], []
    for (uuid, pod), watts in gpus.items():
        s = counter(watts, T0, T0 + 60, labels={"UUID": uuid, "namespace": "ns", "pod": pod})
        discovery.append(s)
        allseries.append(s)
    out = attribute([a, b], discovery, allseries, margin_seconds=5)
    assert out.reason is Reason.MEASURED
    assert out.energy_joules == pytest.approx(100 * 20 + 200 * 20 + 300 * 30)
    assert out.duration_seconds == pytest.approx(35.0)
    assert len(out.devices) == 3


def test_retryable_outcomes():
    pod = run(end=T0 + 40)
    early = counter(100.0, T0, T0 + 35, labels={"namespace": "ns", "pod": pod.name})
    out = attribute([pod], [early], [early], margin_seconds=5)
    assert out.reason is Reason.WAITING and out.reason.retryable
    assert attribute([pod], [], [], margin_seconds=5).reason is Reason.NO_DATA
    two = run(gpus=2)
    one = counter(100.0, T0, T0 + 60, labels={"namespace": "ns", "pod": two.name})
    missing = attribute([two], [one], [one], margin_seconds=5)
    assert missing.reason is Reason.NO_DATA and "2 GPU(s)" in missing.message
    never = PodRun("ns", "p", None, None, None, "Failed", "job", 1)
    assert attribute([never], [], [], margin_seconds=5).reason is Reason.NO_PODS


def test_pod_run_reads_container_times_and_owner():
    body = {
        "metadata": {
            "name": "job-0-x",
            "namespace": "ns",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "job", "uid": "u"}],
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
        "status": {
            "phase": "Succeeded",
            "startTime": "2026-01-01T00:00:00Z",
            "containerStatuses": [
                {
                    "name": "a",
                    "state": {
                        "terminated": {
                            "startedAt": "2026-01-01T00:00:05Z",
                            "finishedAt": "2026-01-01T00:01:05Z",
                        }
                    },
                }
            ],
        },
    }
    r = pod_run(body)
    assert (r.job, r.job_uid, r.node, r.gpus, r.phase) == ("job", "u", "n1", 2, "Succeeded")
    assert r.finished - r.started == 60.0
    # orphaned (its Job deleted with --cascade=orphan: the garbage collector removed the ownerReference):
    # the labels the Job controller put on it still name the Job and its uid
    orphan = {**body, "metadata": {"name": "job-0-x", "namespace": "ns"}}
    orphan["metadata"]["labels"] = {
        "batch.kubernetes.io/job-name": "job",
        "batch.kubernetes.io/controller-uid": "u",
    }
    assert (pod_run(orphan).job, pod_run(orphan).job_uid) == ("job", "u")
    orphan["metadata"]["labels"] = {"job-name": "job", "controller-uid": "u"}  # before Kubernetes 1.27
    assert (pod_run(orphan).job, pod_run(orphan).job_uid) == ("job", "u")
    body["status"]["containerStatuses"].append(
        {"name": "b", "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}
    )
    assert pod_run(body).finished is None and pod_run(body).started == r.started - 4


def test_selectors_parse_and_helpers():
    assert pods_selector("ns", ["a.b", "c"]) == (
        'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{namespace="ns",pod=~"a\\\\.b|c"}'
    )
    assert uuids_selector(["GPU-1"]).endswith('{UUID=~"GPU\\\\-1"}')
    parsed = parse_matrix([{"metric": {"UUID": "u"}, "values": [[2, "5"], [1, "NaN"], [1.5, "3"]]}])
    assert parsed[0].samples == ((1.5, 3.0), (2.0, 5.0))
    assert merge_windows([(5, 9), (0, 2), (1, 3)]) == [(0, 3), (5, 9)]
    b = Backoff(1.0, 4.0)
    assert b.due("x", 0.0)
    assert [b.failed("x", 0.0) for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert not b.due("x", 3.0) and b.due("x", 4.0)


def test_edges_take_the_jobs_own_power_not_the_idle_power_around_it():
    """Idle 50 W, 300 W while the pod runs, samples half an interval off the pod's start and end:
    interpolating between bracketing samples would under-count both edges by (300 - 50) W x 0.25 s."""
    pod = run(start=T0 + 10.0, end=T0 + 30.0)

    def energy_mj(t: float) -> float:
        busy = min(max(t - pod.started, 0.0), pod.finished - pod.started)
        return (50.0 * (t - T0) + 250.0 * busy) * 1000.0

    samples = tuple((T0 + 0.5 + i, energy_mj(T0 + 0.5 + i)) for i in range(40))
    series = [Series({**GPU, "namespace": "ns", "pod": pod.name}, samples)]
    out = attribute([pod], series, series, margin_seconds=5)
    assert out.energy_joules == pytest.approx(300.0 * 20, rel=1e-9)


async def test_prometheus_client_maps_every_failure_to_unavailable():
    from aiohttp import web
    from energaizer_operator.promclient import PrometheusClient, PrometheusUnavailable
    from operator_testkit import free_port

    answers = {
        "/ok/api/v1/query": web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": []}}
        ),
        "/error/api/v1/query": web.json_response({"status": "error", "error": "bad"}, status=400),
        "/html/api/v1/query": web.Response(text="<html>proxy</html>", status=502),
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        assert form["query"] == "up" and float(form["time"]) == 12.5
        return answers[request.path]

    runner, port = await serve_query(handler, "/{kind}/api/v1/query")
    try:
        ok = PrometheusClient(f"http://127.0.0.1:{port}/ok/")
        assert await ok.query("up", 12.5) == ("matrix", [])
        await ok.close()
        for url in (
            f"http://127.0.0.1:{port}/error",
            f"http://127.0.0.1:{port}/html",
            f"http://127.0.0.1:{free_port()}",
        ):
            client = PrometheusClient(url, timeout_seconds=5)
            with pytest.raises(PrometheusUnavailable):
                await client.query("up", 12.5)
            await client.close()
    finally:
        await runner.cleanup()


def test_time_sliced_nodes_and_hidden_neighbours():
    from energaizer_operator.measured import hidden_sharing, node_time_sliced, overlapping

    assert node_time_sliced({"nvidia.com/gpu.replicas": "4"})
    assert node_time_sliced({"nvidia.com/gpu.sharing-strategy": "time-slicing"})
    assert node_time_sliced({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-SHARED"})
    assert not node_time_sliced({"nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none"})
    mine = run(start=T0 + 10, end=T0 + 40)
    during = PodRun("other", "x", "n1", T0 + 20, None, "Running", None, 1)  # still running: ends "now"
    before = PodRun("other", "y", "n1", T0, T0 + 9, "Succeeded", None, 1)
    elsewhere = PodRun("other", "z", "n2", T0 + 20, T0 + 30, "Succeeded", None, 1)
    cpu_only = PodRun("other", "w", "n1", T0 + 20, T0 + 30, "Succeeded", None, 0)
    assert overlapping([mine], [mine, during, before, elsewhere, cpu_only], now=T0 + 50) == [during]
    held = {"GPU-a": {mine.name}}
    unseen = hidden_sharing(held, [during], [], margin_seconds=5, now=T0 + 50)
    assert unseen is not None and unseen.reason is Reason.SHARED and "other/x" in unseen.message
    own_gpu = counter(100.0, T0, T0 + 60, labels={"UUID": "GPU-b", "namespace": "other", "pod": "x"})
    assert hidden_sharing(held, [during], [own_gpu], margin_seconds=5, now=T0 + 50) is None
    on_mine = counter(100.0, T0, T0 + 60, labels={"namespace": "other", "pod": "x"})
    assert hidden_sharing(held, [during], [on_mine], margin_seconds=5, now=T0 + 50).reason is Reason.SHARED


def test_neighbours_of_one_name_in_two_namespaces_are_two_pods():
    """Two neighbours on the job's time-sliced node share a name in two namespaces (``vllm-0`` of two
    teams). dcgm-exporter's series were matched to pods by name alone: the series of team-a's pod on its
    own GPU counted for team-b's too, which dcgm-exporter names on no GPU (hidden behind the job's pod),
    and the job was measured with that pod's power in it. Now a series names a pod by namespace and name."""
    from energaizer_operator.measured import discover_gpus, hidden_sharing

    held = {"GPU-a": {"job-0-aaaaa"}}
    seen = PodRun("team-a", "vllm-0", "n1", T0 + 5, T0 + 45, "Succeeded", None, 1)
    hidden = PodRun("team-b", "vllm-0", "n1", T0 + 5, T0 + 45, "Succeeded", None, 1)
    own_gpu = counter(100.0, T0, T0 + 60, labels={"UUID": "GPU-b", "namespace": "team-a", "pod": "vllm-0"})
    for order in ([seen, hidden], [hidden, seen]):
        out = hidden_sharing(held, order, [own_gpu], margin_seconds=5, now=T0 + 50)
        assert out is not None and out.reason is Reason.SHARED, order
        assert "team-b/vllm-0" in out.message and "names it on no GPU" in out.message, out.message
    assert hidden_sharing(held, [seen], [own_gpu], margin_seconds=5, now=T0 + 50) is None
    assert discover_gpus([hidden], [own_gpu], margin_seconds=5) == {}


def test_two_series_of_one_gpu_read_at_different_moments_are_not_resets():
    """Two exporters (or scrape jobs, or Prometheus replicas) of one GPU: series that differ only in
    ``instance``, each reading the counter at its own moment, here 1 s apart. Merged by time, the older
    reading of one follows the newer of the other: a small drop, which is not a driver reload (that restarts
    the counter from zero) and must not add the whole counter since driver load (5e9 mJ) to the job."""
    pod = run(start=T0 + 10, end=T0 + 70)
    reload_at = T0 + 40.25

    def reading(t: float) -> float:  # 300 W, 5e9 mJ since driver load, reloaded at reload_at
        return 300.0 * (t - reload_at) * 1000 if t >= reload_at else 5e9 + 300.0 * (t - T0) * 1000

    def rows(instance: str, offset: float, stale: float, t_to: float) -> list[Series]:
        samples = [(T0 + i + offset, reading(T0 + i + offset - stale)) for i in range(int(t_to - T0))]
        mine = {"namespace": "ns", "pod": pod.name}
        return [
            Series({**GPU, "instance": instance}, tuple(s for s in samples if s[0] < pod.started)),
            Series(
                {**GPU, **mine, "instance": instance},
                tuple(s for s in samples if pod.started <= s[0] < pod.finished),
            ),
            Series({**GPU, "instance": instance}, tuple(s for s in samples if s[0] >= pod.finished)),
        ]

    a, b = rows("10.0.0.1:9400", 0.0, 0.0, T0 + 90), rows("10.0.0.2:9400", 0.5, 1.0, T0 + 90)
    out = attribute([pod], [a[1], b[1]], a + b, margin_seconds=5)
    assert out.reason is Reason.MEASURED, out.message
    assert out.energy_joules == pytest.approx(300.0 * 60, rel=0.02)
    # an exporter restarted on a new address mid-run: neither target covers the window, their merge does
    c = rows("10.0.0.3:9400", 0.0, 0.0, T0 + 90)
    first = [Series(s.labels, tuple(x for x in s.samples if x[0] < T0 + 30)) for s in a]
    second = [Series(s.labels, tuple(x for x in s.samples if x[0] >= T0 + 31)) for s in c]
    out = attribute([pod], [first[1], second[1]], first + second, margin_seconds=5)
    assert out.reason is Reason.MEASURED, out.message
    assert out.energy_joules == pytest.approx(300.0 * 60, rel=0.02)


def test_a_multi_gpu_job_read_by_two_scrape_targets_is_measured_on_every_gpu():
    """Two scrape targets read every GPU of a 2-GPU pod (two exporters, two scrape jobs). The loop over a
    GPU's targets re-used the name of the job's own pods: from the second GPU on, the job's own pod was
    another workload's, and the job came out GPUShared ("shared with ns/<its own pod>"). Now it is
    measured on both GPUs."""
    pod = run(start=T0 + 10, end=T0 + 70, gpus=2)
    mine = {"namespace": "ns", "pod": pod.name}
    discovery, every = [], []
    for uuid, watts in (("GPU-a", 300.0), ("GPU-b", 200.0)):
        for instance, offset in (("10.0.0.1:9400", 0.0), ("10.0.0.2:9400", 0.5)):
            full = counter(watts, T0 + offset, T0 + 90 + offset, labels={"UUID": uuid, "instance": instance})
            during = Series(
                {**full.labels, **mine}, tuple(x for x in full.samples if pod.started <= x[0] < pod.finished)
            )
            rest = Series(
                full.labels, tuple(x for x in full.samples if not pod.started <= x[0] < pod.finished)
            )
            discovery.append(during)
            every += [during, rest]
    out = attribute([pod], discovery, every, margin_seconds=5)
    assert out.reason is Reason.MEASURED, out.message
    assert [d.uuid for d in out.devices] == ["GPU-a", "GPU-b"]
    assert out.energy_joules == pytest.approx((300.0 + 200.0) * 60, rel=0.02)


def test_a_counter_that_did_not_advance_is_no_measurement():
    """dcgm-exporter refreshes its readings once per collect interval (30 s by default): a 10 s job scraped
    every 2 s can see one reading throughout, and a pod whose start and finish fall in one second (the
    kubelet's times have second resolution) held its GPU "for 0 s". A powered GPU's counter always advances:
    0 J is no measurement (it would be written as 0 J at 0 W, and export-measurements' row fails calibrate)."""
    pod = run(start=T0 + 10, end=T0 + 20)
    frozen = Series(
        {**GPU, "namespace": "ns", "pod": pod.name}, tuple((T0 + i, 5e9) for i in range(0, 40, 2))
    )
    out = attribute([pod], [frozen], [frozen], margin_seconds=5)
    assert out.reason is Reason.NO_DATA and out.energy_joules is None, out.message
    assert "did not advance" in out.message
    instant = run(start=T0 + 10, end=T0 + 10)
    live = counter(300.0, T0, T0 + 30, labels={"namespace": "ns", "pod": instant.name})
    out = attribute([instant], [live], [live], margin_seconds=5)
    assert out.reason is Reason.NO_DATA and out.energy_joules is None, out.message


async def test_waiting_for_a_sample_that_never_comes_gives_up(monkeypatch):
    """The node's exporter went away with the job (a node shut down gracefully, scaled down): no sample of
    its GPU ever follows the pod's end. Past the give-up time that is final, as NoData is, not
    WaitingForData retried (a query every 10 minutes) until Prometheus' retention drops the series."""
    import time

    from aiohttp import web
    from energaizer_operator.measured_handlers import Candidate, JobRun, Measurer
    from energaizer_operator.settings import OperatorSettings
    from energaizer_operator.state import OperatorState

    t0 = time.time() - 7200.0
    pod = run(start=t0 + 10, end=t0 + 70)
    labels = {**GPU, "namespace": "ns", "pod": pod.name}
    values = [[t0 + i, str(5e9 + 3e5 * i)] for i in range(65)]  # the exporter's last sample before the end

    async def query(_request: web.Request) -> web.Response:
        result = [{"metric": labels, "values": values}]
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})

    runner, port = await serve_query(query)
    written = capture_status_writes(monkeypatch)
    cfg = OperatorSettings(prometheus_url=f"http://127.0.0.1:{port}", measure_give_up_seconds=3600)
    measurer = Measurer(cfg, {"state": OperatorState(cfg)})
    cand = Candidate("ns", "a", "uid-a", "job", "h100-sxm", None)
    try:
        jobs = {("ns", "job"): [JobRun("ns", "job", True, t0 + 71, owner_uid="uid-a")]}
        await measurer.measure_one(cand, {("job", "ns", "job"): [pod]}, jobs, {})
    finally:
        await measurer.stop()
        await runner.cleanup()
    (cond,) = written[0]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Measured", "False", "NoDataGaveUp")
    assert "measured" not in written[0]


async def test_a_pod_that_never_ended_is_waited_for_said_and_not_left_out(monkeypatch):
    """A pod of the finished Job on a lost node: deleted (its Job failed, or the node's pods evicted), its
    grace period over, and its kubelet never confirms; it stays Running. The measurement waited without a
    word until ENERGAIZER_MEASURE_GIVE_UP_SECONDS after the Job ended, then measured the Job without that
    pod's GPUs: Measured=True with a number that under-counts. Now the wait is said (WaitingForData naming
    the pod, once its grace period is over), and past the give-up time there is no number (NoDataGaveUp).
    A pod still in its grace period is being torn down: nothing is said yet."""
    import time

    from aiohttp import web
    from energaizer_operator.measured import PodRun
    from energaizer_operator.measured_handlers import Candidate, JobRun, Measurer
    from energaizer_operator.settings import OperatorSettings
    from energaizer_operator.state import OperatorState

    def pods(t0: float, deleting_at: float) -> list[PodRun]:
        done = PodRun("ns", "job-done", "n1", t0 + 10, t0 + 70, "Succeeded", "job", 1, job_uid="j")
        lost = PodRun(
            "ns", "job-lost", "n2", t0 + 10, None, "Running", "job", 1, job_uid="j", deleting_at=deleting_at
        )
        return [done, lost]

    async def query(request: web.Request) -> web.Response:  # the GPU of job-done, read every second
        t0 = float((await request.post())["time"]) - 1000.0
        labels = {**GPU, "namespace": "ns", "pod": "job-done"}
        values = [[t0 + i, str(5e9 + 3e5 * i)] for i in range(0, 1000)]
        result = [{"metric": labels, "values": values}]
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})

    runner, port = await serve_query(query)
    written = capture_status_writes(monkeypatch)
    cfg = OperatorSettings(prometheus_url=f"http://127.0.0.1:{port}", measure_give_up_seconds=3600)
    cand = Candidate("ns", "a", "uid-a", "job", "h100-sxm", None)
    outcomes = []
    try:
        for ago, grace_left in ((7200.0, -7000.0), (300.0, -100.0), (300.0, 600.0)):
            t0 = time.time() - ago  # the Job ended at t0 + 71
            measurer = Measurer(cfg, {"state": OperatorState(cfg)})
            jobs = {("ns", "job"): [JobRun("ns", "job", True, t0 + 71, uid="j", owner_uid="uid-a")]}
            written.clear()
            try:
                index = {("job", "ns", "job"): pods(t0, time.time() + grace_left)}
                await measurer.measure_one(cand, index, jobs, {})
            finally:
                await measurer.stop()
            outcomes.append([(c["reason"], c["message"]) for w in written for c in w["conditions"]])
            assert not any("measured" in w for w in written), written
    finally:
        await runner.cleanup()
    (gave_up,), (waiting,), nothing = outcomes
    assert gave_up[0] == "NoDataGaveUp" and "pod job-lost (node n2) has not ended 3600 s after" in gave_up[1]
    assert waiting[0] == "WaitingForData" and "pod job-lost (node n2) was deleted" in waiting[1], waiting
    assert nothing == []


async def test_an_outcome_is_not_written_to_an_aijob_of_the_same_name_created_again(monkeypatch):
    """The measurement reads the AIJob back by name before it writes: an AIJob deleted and created again
    (``kubectl delete``, then ``apply``: a rerun) while its outcome was on its way got the old one's
    ``status.measured`` or final condition, and its own run was then never measured (no candidate). Now an
    AIJob read back with another uid is not written (as one deleted)."""
    import kopf
    from energaizer_operator import kube
    from energaizer_operator.measured_handlers import Candidate, Measurer
    from energaizer_operator.settings import OperatorSettings
    from energaizer_operator.state import OperatorState

    written: list[dict] = []
    uid_now = {"uid": "uid-new"}
    monkeypatch.setattr(
        kube, "read_aijob", lambda ns, name: {"metadata": {"resourceVersion": "1", **uid_now}, "status": {}}
    )
    monkeypatch.setattr(kube, "patch_aijob_status", lambda ns, name, status, rv=None: written.append(status))
    monkeypatch.setattr(kopf, "event", lambda *a, **k: None)
    cfg = OperatorSettings(prometheus_url="http://127.0.0.1:9")
    measurer = Measurer(cfg, {"state": OperatorState(cfg)})
    # the Job was deleted before it ended: the final JobDeleted, without Prometheus
    cand = Candidate("ns", "a", "uid-old", "a", "h100-sxm", None, job_deleted=True)
    try:
        await measurer.measure_one(cand, {}, {}, {})
        assert written == []
        uid_now["uid"] = "uid-old"  # the AIJob itself: written
        measurer.decided.clear()
        await measurer.measure_one(cand, {}, {}, {})
    finally:
        await measurer.stop()
    (status,) = written
    assert [c["reason"] for c in status["conditions"]] == ["JobDeleted"]


async def test_a_two_day_job_is_read_in_pieces_and_measured_whole():
    """A long job's raw samples come in range queries of at most 6 h (a week of a 64-GPU run in one answer
    is millions of samples past the client's timeout), joined into one series per GPU: the energy is the
    whole run's."""
    import re

    from aiohttp import web
    from energaizer_operator.measured import MAX_RANGE_SECONDS
    from energaizer_operator.measured_handlers import measure
    from energaizer_operator.promclient import PrometheusClient

    watts, step = 400.0, 60.0
    pod = run(start=T0 + 30, end=T0 + 2 * 86400 + 30)
    times = [T0 + i * step for i in range(int(2 * 86400 / step) + 3)]
    inside = {**GPU, "namespace": "ns", "pod": pod.name}
    ranges: list[float] = []

    async def query(request: web.Request) -> web.Response:
        form = await request.post()
        at = float(form["time"])
        seconds = float(re.search(r"\[(\d+)s\]$", form["query"]).group(1))
        ranges.append(seconds)
        picked = [t for t in times if at - seconds < t <= at]
        labels = inside if "pod=~" in form["query"] else GPU
        values = [[t, str(watts * (t - T0) * 1000.0)] for t in picked]
        result = [{"metric": labels, "values": values}] if values else []
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})

    runner, port = await serve_query(query)
    client = PrometheusClient(f"http://127.0.0.1:{port}")
    try:
        out = await measure(client, [pod], margin_seconds=120.0, now=T0 + 3 * 86400)
    finally:
        await client.close()
        await runner.cleanup()
    assert out.reason is Reason.MEASURED, out.message
    assert out.energy_joules == pytest.approx(watts * 2 * 86400, rel=1e-6)
    assert max(ranges) <= MAX_RANGE_SECONDS and len(ranges) >= 2 * 9  # 48 h + margins in 6 h pieces, twice


def exporter_scrapes(
    pod: PodRun,
    watts: float,
    *,
    idle_watts: float | None = None,
    collect: float = 30.0,
    scrape: float = 15.0,
    reload_at: float | None = None,
    until: float = T0 + 400,
) -> list[Series]:
    """dcgm-exporter reading the counter every ``collect`` s (from T0), Prometheus scraping it every
    ``scrape`` s (from T0): each scrape repeats the last reading, pod labels on the rows while the pod held
    the GPU at that reading. ``watts`` while the pod holds the GPU, ``idle_watts`` (default: the same)
    otherwise; 5e9 mJ since driver load, or a reload (counter from zero) at ``reload_at``."""
    idle = watts if idle_watts is None else idle_watts

    def reading(t: float) -> float:
        since = reload_at if reload_at is not None and t >= reload_at else T0
        held = max(0.0, min(t, pod.finished) - max(since, pod.started))
        return (idle * (t - since) + (watts - idle) * held) * 1000.0 + (5e9 if since == T0 else 0.0)

    rows: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(int((until - T0) / scrape)):
        at = T0 + i * scrape
        read = T0 + (i * scrape // collect) * collect
        rows[pod.started <= read < pod.finished].append((at, reading(read)))
    mine = {"namespace": pod.namespace, "pod": pod.name}
    return [Series({**GPU, **(mine if held else {})}, tuple(s)) for held, s in rows.items() if s]


def measured(pod: PodRun, series: list[Series]):
    out = attribute([pod], series, series, margin_seconds=120)
    assert out.reason is Reason.MEASURED, out.message
    return out


@pytest.mark.parametrize("offset", [10.0, 15.0, 25.0])
def test_a_90_s_job_scraped_twice_per_exporter_reading_is_measured_whole(offset):
    """dcgm-exporter reads the counter every 30 s, Prometheus scrapes every 15 s: each reading comes twice,
    stamped with two scrape times. A repeat is no new reading (taken as one, the interval before it reads
    0 W and the next one twice the power): a 90 s job at 300 W throughout was off by up to 20 %; the edges
    are the apportioned parts of the intervals straddling its start and end."""
    pod = run(start=T0 + 100 + offset, end=T0 + 190 + offset)
    out = measured(pod, exporter_scrapes(pod, 300.0))
    assert out.energy_joules == pytest.approx(300.0 * 90, rel=0.02)
    # readings 60 s apart inside (120-180, 150-210): the other 30 s are the edges'
    assert out.interpolated_share == pytest.approx(30.0 / 90.0, abs=0.01)
    status = out.status("h100-sxm")
    assert status["interpolatedShare"] == pytest.approx(out.interpolated_share, abs=1e-4)
    assert status["devices"][0]["interpolatedEnergyJoules"] == pytest.approx(
        status["interpolatedEnergyJoules"]
    )


def test_edges_at_reading_instants_are_read_not_apportioned():
    pod = run(start=T0 + 120, end=T0 + 210)
    out = measured(pod, exporter_scrapes(pod, 300.0, idle_watts=60.0))
    assert out.energy_joules == pytest.approx(300.0 * 90, rel=1e-9)
    assert out.interpolated_share == 0.0


def test_a_job_shorter_than_the_reading_interval_is_apportioned_and_says_so():
    """20 s across the 30 s exporter reading at T0+150, scraped every 15 s: the readings before and after
    bracket it, and it gets its part of those intervals' energy (constant power within a sampling
    interval), all of it interpolated. A pod between two readings is never named by dcgm-exporter (its pod
    mapping is refreshed at each reading): NoData, no energy made up for it."""
    pod = run(start=T0 + 140, end=T0 + 160)
    out = measured(pod, exporter_scrapes(pod, 300.0))
    assert out.energy_joules == pytest.approx(300.0 * 20, rel=0.02)
    assert out.interpolated_share == pytest.approx(1.0)
    assert out.status(None)["interpolatedShare"] == 1.0
    unseen = run(start=T0 + 125, end=T0 + 145)
    series = exporter_scrapes(unseen, 300.0)
    out = attribute([unseen], series, series, margin_seconds=120)
    assert out.reason is Reason.NO_DATA and out.energy_joules is None, out.message


@pytest.mark.parametrize("reload_offset", [-10.0, 5.0, 85.0])
def test_a_counter_reset_at_an_edge_counts_from_zero(reload_offset):
    """A driver reload in the interval straddling the start (before or after it) or the end: the counter
    restarts from zero there, which counts as what accrued since, never as a drop of 5e9 mJ."""
    pod = run(start=T0 + 105, end=T0 + 195)
    out = measured(pod, exporter_scrapes(pod, 300.0, reload_at=pod.started + reload_offset))
    assert out.energy_joules == pytest.approx(300.0 * 90, rel=0.02)


def test_a_jobs_pods_are_those_of_its_uid():
    """Pods indexed under a Job's name come from every Job of that name; the Job's own are those of its uid.
    Without the uid (the Job deleted before this process saw it): the latest run's."""
    from energaizer_operator.measured_handlers import job_pods

    def pod(name: str, job_uid: str, start: float) -> PodRun:
        return PodRun(
            "ns", name, "n1", start, start + 10, "Succeeded", "job", 1, uid=f"uid-{name}", job_uid=job_uid
        )

    old, new, new2 = (
        pod("job-a", "job-1", T0),
        pod("job-b", "job-2", T0 + 100),
        pod("job-c", "job-2", T0 + 50),
    )
    assert job_pods([old, new, new2], "job-2") == [new, new2]
    assert job_pods([old, new, new2], "job-1") == [old]
    assert job_pods([old, new, new2], "job-3") == []
    assert job_pods([old, new, new2], "") == [new, new2]
    assert job_pods([old], "") == [old]


def test_a_job_owned_by_its_aijob_under_any_served_version_is_its_job():
    """A Job's owner is its AIJob whatever version of the CRD the ownerReference names (a Job created under an
    earlier served version is still the AIJob's after an upgrade); another kind or group is not its owner."""
    from energaizer_operator.measured_handlers import job_run

    def job(api_version: str, kind: str = "AIJob") -> dict:
        ref = {"apiVersion": api_version, "kind": kind, "name": "a", "uid": "uid-a", "controller": True}
        return {"metadata": {"namespace": "ns", "name": "a-0", "uid": "j", "ownerReferences": [ref]}}

    from energaizer_operator.gate import created_by_energaizer

    for body, owner in (
        (job("energaizer.io/v1alpha1"), "uid-a"),
        (job("energaizer.io/v1"), "uid-a"),
        (job("other.example/v1alpha1"), ""),
        (job("energaizer.io/v1alpha1", kind="Workload"), ""),
    ):
        assert job_run(body).owner_uid == owner  # the measurement's view
        assert created_by_energaizer(body["metadata"]) is bool(owner)  # the Kueue gate's
