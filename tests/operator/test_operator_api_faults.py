"""API-server faults during a burst: 429 with Retry-After, 500/503, writes that land although the API answers
504, watch streams that end or expire (410 Gone), a slow server, an outage (connections cut, or requests
never answered), Events that cannot be posted.

Whatever the fault, once it is over: every AIJob settles (Placed or Unschedulable), exactly one Job per
placed AIJob, no invalid write, the process still runs, and the metrics agree with the AIJobs' status.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from kmock_support import Fault, FaultyEmulator
from operator_testkit import PRODUCTS, aijob, metrics_when, node, wait_for
from test_operator_acceptance import SETTLED, _burst, _limited_cluster, assert_settled_consistently

pytestmark = pytest.mark.kmock(cls=FaultyEmulator)

WRITE = frozenset({"POST", "PATCH", "PUT"})
N = 30


def sample(metrics: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? ([-+0-9.eEinfNa]+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def _faults_429(c, op) -> None:
    c.k8s.faults += [
        Fault(r"/status$", frozenset({"PATCH"}), status=429, retry_after=1, times=15),
        Fault(r"/jobs$", frozenset({"POST"}), status=429, retry_after=1, times=5),
        Fault(r"/events$", frozenset({"POST"}), status=429, retry_after=1, times=10),
    ]


async def _faults_5xx(c, op) -> None:
    c.k8s.faults += [
        Fault(r"/status$", frozenset({"PATCH"}), status=503, times=10),
        Fault(r"/aijobs/[^/]+$", frozenset({"PATCH"}), status=500, times=5),
        Fault(r"/jobs$", frozenset({"POST"}), status=500, times=3),
        Fault(r"/jobs$", frozenset({"POST"}), status=504, after=True, times=3),  # created all the same
        Fault(r"/(aijobs|jobs|nodes|pods)$", frozenset({"GET"}), watch=False, status=500, times=4),
    ]
    await c.k8s.end_watches(gone=True)  # the lists after the 410 fail first


async def _watches_end(c, op) -> None:
    await c.k8s.end_watches()
    await asyncio.sleep(1)
    await c.k8s.end_watches(gone=True)


async def _slow(c, op) -> None:
    c.k8s.faults += [
        # each delay a few batch windows (0.3 s): writes still in flight when the loops look again
        Fault(r"/status$", frozenset({"PATCH"}), delay_s=1, times=20),
        Fault(r"/jobs$", frozenset({"POST"}), delay_s=1.5, times=5),
        Fault(r"/aijobs/[^/]+$", frozenset({"PATCH"}), delay_s=1, times=5),
        Fault(r"/leases", delay_s=3, times=1),  # a renewal times out (2 s per call); the 6 s Lease holds
        Fault(r"/(aijobs|jobs)$", frozenset({"GET"}), watch=False, delay_s=1, times=3),
    ]
    await c.k8s.end_watches()  # the lists after the end are slow


async def _outage(c, op) -> None:
    """Until the 6 s Lease has lapsed (renewals every 2 s fail at once): the leader stands by, then leads
    again once the API server is back."""
    await c.k8s.set_outage(True)
    await wait_for(lambda: ": standing by" in op.log(), timeout=60)
    await c.k8s.set_outage(False)


# the API timeout of the unanswered outage: shorter than the default 30 s, the same path
UNANSWERED_API_TIMEOUT_S = 3


async def _outage_unanswered(c, op) -> None:
    """The API server dies without resetting the connections: the requests sent meanwhile never get an
    answer (a client without a timeout waits for ever), then it is back. Twice the API timeout: a write
    sent as it starts gives up and its retry (next window) is left unanswered too."""
    await c.k8s.set_outage(True, hang=True)
    await asyncio.sleep(2 * UNANSWERED_API_TIMEOUT_S)
    await c.k8s.set_outage(False)


async def _status_landed(c, op) -> None:
    """The status writes (estimates, Placed) land, but the API answers 504: each is tried again."""
    c.k8s.faults.append(Fault(r"/status$", frozenset({"PATCH"}), status=504, after=True, times=100))


async def _events_fail(c, op) -> None:
    c.k8s.faults.append(Fault(r"/events$", frozenset({"POST"}), status=500))


SCENARIOS = {
    "429": _faults_429,
    "5xx": _faults_5xx,
    "watch-end-410": _watches_end,
    "slow": _slow,
    "outage": _outage,
    "outage-unanswered": _outage_unanswered,
    "events-fail": _events_fail,
    "status-landed": _status_landed,
}


@pytest.mark.parametrize("fault", list(SCENARIOS))
async def test_a_burst_survives_api_faults(cluster, operator_factory, fault):
    c = cluster
    await _limited_cluster(c)
    timeout = (
        {"ENERGAIZER_API_TIMEOUT_SECONDS": str(UNANSWERED_API_TIMEOUT_S)}
        if fault == "outage-unanswered"
        else {}
    )
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3", **timeout)
    bodies = _burst(N, seed=11)
    names = [b["metadata"]["name"] for b in bodies]
    for body in bodies[: N // 3]:
        await c.create(body)
    await SCENARIOS[fault](c, op)
    for body in bodies[N // 3 :]:
        await c.create(body)
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=240, interval=0.5)
    assert c.k8s.injected, "no fault was injected"
    assert op.proc.returncode is None, op.log()[-3000:]
    assert_settled_consistently(c, names, [op.log()], failed_writes=True)
    placed = [n for n in names if c.phase(n) == "Placed"]
    metrics = await metrics_when(
        op.metrics_port, lambda t: sample(t, "energaizer_aijobs", phase="Placed") == len(placed)
    )
    assert sample(metrics, "energaizer_placements_total") == len(placed)
    assert sample(metrics, "energaizer_placement_info") == len(placed)
    assert "NaN" not in metrics and "NaN" not in op.log()
    assert await op.stop() == 0


async def test_unanswered_writes_do_not_cost_the_leader_its_lease(cluster, operator_factory):
    """Status writes left without an answer (each gives up after its timeout) must not hold up the
    leader's Lease renewals: the standby never takes over while the leader runs, and the burst settles."""
    c = cluster
    await _limited_cluster(c)
    # each unanswered write holds a worker thread for the API timeout, longer than the 6 s Lease
    first = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3", ENERGAIZER_API_TIMEOUT_SECONDS="8")
    await wait_for(lambda: "leading" in first.log(), timeout=60)
    second = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3", ENERGAIZER_API_TIMEOUT_SECONDS="8")
    await wait_for(lambda: "candidate for the Lease" in second.log(), timeout=60)
    c.k8s.faults.append(Fault(r"/status$", frozenset({"PATCH"}), hang=True, times=12))
    bodies = _burst(N, seed=11)
    names = [b["metadata"]["name"] for b in bodies]
    for body in bodies:
        await c.create(body)
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=240, interval=0.5)
    assert sum(what == "hang" for _, _, what in c.k8s.injected) == 12
    assert_settled_consistently(c, names, [first.log(), second.log()], failed_writes=True)
    assert ": leading" not in second.log()  # the leader renewed its Lease throughout
    assert await second.stop() == 0
    assert await first.stop() == 0


async def test_writes_left_unanswered_do_not_hold_up_the_other_aijobs(cluster, operator_factory):
    """15 status writes left without an answer (held by the mock; the API timeout 600 s) each hold a
    worker thread: another AIJob is estimated and placed meanwhile. With asyncio's default of CPUs + 4
    worker threads (6 on 2 CPUs; fewer than 15 on up to 11), they held up every estimate and placement
    until the API timeout."""
    c = cluster
    await c.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    answer = asyncio.Event()
    held = Fault(r"/aijobs/held-\d+/status$", frozenset({"PATCH"}), until=answer)
    c.k8s.faults.append(held)
    op = await operator_factory(
        ENERGAIZER_BATCH_WINDOW_SECONDS="0.3",
        ENERGAIZER_API_TIMEOUT_SECONDS="600",
        ENERGAIZER_MAX_BATCH_DELAY_SECONDS="1",  # the placer waits for the estimates in flight this long
    )
    names = [f"held-{i:02d}" for i in range(15)]  # one write slot of the estimator's 16 left
    for name in names:
        await c.create(aijob(name, model="gpt2", requests=200))
    await wait_for(lambda: held.hits >= len(names), timeout=60)
    await c.create(aijob("free", model="gpt2", requests=200))
    await wait_for(lambda: c.phase("free") == "Placed", timeout=90)
    assert all(c.phase(n) is None for n in names)  # still unanswered
    answer.set()
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=90)
    assert await op.stop() == 0


async def test_an_unanswered_kopf_request_gives_up_after_the_api_timeout(cluster, operator_factory):
    """kopf posts the operator's Events one by one; the first one's POST is never answered (a server that
    died without a reset). It was held for kopf's own 5-minute request timeout, and every Event after it
    with it. kopf's requests now take ENERGAIZER_API_TIMEOUT_SECONDS (3 s here) and are retried."""
    c = cluster
    await c.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    lost = Fault(r"/events$", frozenset({"POST"}), agent="kopf/", hang=True, times=1)
    c.k8s.faults.append(lost)
    op = await operator_factory(ENERGAIZER_API_TIMEOUT_SECONDS="3")
    for name in ("first", "second"):
        await c.create(aijob(name, model="gpt2", requests=200))
    await wait_for(lambda: lost.hits == 1, timeout=60)
    await wait_for(lambda: all(c.phase(n) == "Placed" for n in ("first", "second")), timeout=60)
    # the hung Event posted again, and the ones queued behind it: each AIJob's Placed Event
    await wait_for(
        lambda: all(any(e.get("reason") == "Placed" for e in c.events(n)) for n in ("first", "second")),
        timeout=60,
    )
    assert [what for *_, what in c.k8s.injected] == ["hang"]
    assert await op.stop() == 0


async def test_a_pod_deleted_while_the_watch_was_down_frees_its_gpus(cluster, operator_factory):
    """The API server is gone for a while; meanwhile a pod holding all 8 L4 GPUs is deleted and the
    server compacts its history (the watches come back to 410 Gone and list again). The GPUs are free:
    the AIJob that waited for them (Unschedulable) must be placed. kopf's relist after the 410 keeps the
    pod in its index: the operator's own relist (every ENERGAIZER_RELIST_INTERVAL_SECONDS) drops it."""
    c = cluster
    await c.add_node(node("l4-0", PRODUCTS["l4"], 8))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "holder", "namespace": "default"},
        "spec": {
            "nodeName": "l4-0",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
        },
        "status": {"phase": "Running"},
    }
    await c.post("/api/v1/namespaces/default/pods", pod)
    op = await operator_factory(ENERGAIZER_RELIST_INTERVAL_SECONDS="1")
    await c.create(aijob("fits-l4", model="gpt2", requests=200))
    await wait_for(lambda: c.phase("fits-l4") == "Unschedulable", timeout=90)  # the pod holds the GPUs
    await c.k8s.set_outage(True)
    resp = await c.k8s.delete("/api/v1/namespaces/default/pods/holder")
    assert resp.status in (200, 202), await resp.text()
    c.k8s.expire_versions()
    cut = len(c.k8s.injected)
    # down for a while: until kopf's pods watch has tried to come back, and been cut
    await wait_for(
        lambda: any(p == "/api/v1/pods" and w == "outage" for _, p, w in c.k8s.injected[cut:]), timeout=60
    )
    await c.k8s.set_outage(False)
    await wait_for(lambda: sum(w == "watch 410" for _, _, w in c.k8s.injected) >= 1, timeout=60)
    await wait_for(lambda: c.phase("fits-l4") == "Placed", timeout=120)
    assert "1 pods deleted while a watch was down are dropped" in op.log()
    assert await op.stop() == 0


RETRY_AFTER_S = 3
OWN_CLIENT = "OpenAPI-Generator/"  # the operator's own calls (kube.py), not kopf's


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PATCH", "/apis/energaizer.io/v1alpha1/namespaces/default/aijobs/ra/status", 429),  # estimates
        ("POST", "/apis/batch/v1/namespaces/default/jobs", 503),  # the Job
    ],
    ids=["status-429", "job-503"],
)
async def test_own_writes_honour_retry_after(cluster, operator_factory, method, path, status):
    """A write answered 429/503 with ``Retry-After: 3`` is not sent again before 3 s have passed since the
    server got it (the loops retry every batch window, 0.3 s here, on their own)."""
    c = cluster
    await c.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    c.k8s.faults.append(
        Fault(
            re.escape(path) + "$",
            frozenset({method}),
            status=status,
            retry_after=RETRY_AFTER_S,
            times=1,
            agent=OWN_CLIENT,
        )
    )
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3")
    await c.create(aijob("ra", model="gpt2", requests=200))
    await wait_for(lambda: c.phase("ra") == "Placed", timeout=120)
    assert c.k8s.injected == [(method, path, str(status))]
    sent = c.k8s.received_times(method, path, OWN_CLIENT)
    assert len(sent) >= 2, sent
    # when the server got them, so a slower machine only widens the gap
    assert sent[1] - sent[0] >= RETRY_AFTER_S, [round(t - sent[0], 3) for t in sent]
    assert list(c.jobs()) == ["ra"]
    assert await op.stop() == 0


STATUS_PATH = "/apis/energaizer.io/v1alpha1/namespaces/default/aijobs/{name}/status"


async def test_a_write_to_an_aijob_deleted_meanwhile_is_one_line(cluster, operator_factory):
    """The AIJob deleted while its estimates were on their way: the status write answers 404, which is
    ordinary operation, not a bug; it was logged with a full traceback. Now one INFO line, no traceback
    (and the loop still retries: here the AIJob is still there, so its estimates are written next)."""
    c = cluster
    await c.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    path = STATUS_PATH.format(name="gone")
    c.k8s.faults.append(
        Fault(re.escape(path) + "$", frozenset({"PATCH"}), status=404, times=1, agent=OWN_CLIENT)
    )
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3")
    await c.create(aijob("gone", model="gpt2", requests=200))
    await wait_for(lambda: c.phase("gone") == "Placed", timeout=120)
    assert c.k8s.injected == [("PATCH", path, "404")]
    log = op.log()
    assert "could not write the estimates of default/gone; retrying (HTTP 404: deleted meanwhile)" in log
    assert "Traceback" not in log
    assert await op.stop() == 0


async def test_a_call_refused_unsent_under_retry_after_is_one_warning_line(cluster, operator_factory):
    """A status write answered 429 with ``Retry-After: 60`` (a wait beyond the 2 s API timeout): the loop's
    retries meanwhile are refused unsent (kube.NotSent). Both were logged with a traceback each; now one
    WARNING line each, saying why."""
    c = cluster
    await c.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    path = STATUS_PATH.format(name="slow")
    c.k8s.faults.append(
        Fault(
            re.escape(path) + "$", frozenset({"PATCH"}), status=429, retry_after=60, times=1, agent=OWN_CLIENT
        )
    )
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3", ENERGAIZER_API_TIMEOUT_SECONDS="2")
    await c.create(aijob("slow", model="gpt2", requests=200))
    await wait_for(lambda: "(Retry-After), beyond the API timeout)" in op.log(), timeout=50)
    log = op.log()
    assert "could not write the estimates of default/slow; retrying (HTTP 429: " in log
    assert "WARNING" in next(line for line in log.splitlines() if "(HTTP 429: not sent: PATCH" in line)
    assert "Traceback" not in log
    assert c.k8s.received_times("PATCH", path, OWN_CLIENT)[1:] == []  # the retries were not sent
    assert await op.stop() == 0
