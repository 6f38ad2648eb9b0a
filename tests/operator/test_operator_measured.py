"""Measured energy end to end: the real operator against kmock, a real Prometheus scraping a synthetic
dcgm-exporter per node, the test playing the scheduler, the kubelet and the Job controller.

Truth: every fake GPU's counter is the exact integral of a known power; a job's true energy is the power
its GPUs drew between its pods' start and finish times (as written in the pods' status).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dcgm_support import METRIC as ENERGY
from dcgm_support import FakeExporter, FakeGPU, Hold, Prometheus, prometheus_binary
from kmock_support import RealisticEmulator
from operator_testkit import PRODUCTS, Cluster, aijob, free_port, metrics_when, node, wait_for

pytestmark = [pytest.mark.kmock(cls=RealisticEmulator), pytest.mark.prometheus]

MODEL_NAMES = {
    "h100-sxm": "NVIDIA H100 80GB HBM3",
    "a100-sxm4-80gb": "NVIDIA A100-SXM4-80GB",
    "l4": "NVIDIA L4",
}
IDLE_WATTS = {"h100-sxm": 70.0, "a100-sxm4-80gb": 55.0, "l4": 16.0}
BUSY_WATTS = {"h100-sxm": 520.0, "a100-sxm4-80gb": 310.0, "l4": 68.0}
GPUS_PER_NODE = 8
POD = "/api/v1/namespaces/default/pods"
JOB_STATUS = "/apis/batch/v1/namespaces/default/jobs/{name}/status"


def iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fleet:
    """Two nodes of each GPU type, 8 fake GPUs each, and which GPUs are free."""

    gpus: dict[str, list[FakeGPU]] = field(default_factory=dict)  # node -> GPUs
    types: dict[str, str] = field(default_factory=dict)  # node -> catalog id
    used: set[tuple[str, int]] = field(default_factory=set)

    def take(self, gpu_type: str, count: int, avoid: set[str] = frozenset()) -> tuple[str, list[FakeGPU]]:
        for name, gpus in self.gpus.items():
            if self.types[name] != gpu_type or name in avoid:
                continue
            free = [g for g in gpus if (name, g.index) not in self.used]
            if len(free) >= count:
                self.used.update((name, g.index) for g in free[:count])
                return name, free[:count]
        raise AssertionError(f"no node of {gpu_type} with {count} free GPUs")


@dataclass
class PodPlan:
    name: str
    job: str
    node: str
    gpus: list[FakeGPU]
    start: float
    end: float


async def start_fleet(cluster: Cluster, boot: float) -> tuple[Fleet, list[FakeExporter]]:
    fleet = Fleet()
    exporters = []
    for gpu_type, product in PRODUCTS.items():
        for i in range(2):
            name = f"{gpu_type}-{i}"
            await cluster.add_node(node(name, product, GPUS_PER_NODE))
            gpus = [
                FakeGPU(name, k, MODEL_NAMES[gpu_type], IDLE_WATTS[gpu_type], boot)
                for k in range(GPUS_PER_NODE)
            ]
            fleet.gpus[name], fleet.types[name] = gpus, gpu_type
            exporters.append(FakeExporter(name, gpus))
    for e in exporters:
        await e.start()
    return fleet, exporters


def pod_body(plan: PodPlan, job_uid: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": plan.name,
            "namespace": "default",
            "labels": {
                "job-name": plan.job,
                "batch.kubernetes.io/job-name": plan.job,
                "controller-uid": job_uid,
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": plan.job,
                    "uid": job_uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": plan.node,
            "containers": [
                {
                    "name": "main",
                    "image": "vllm",
                    "resources": {"limits": {"nvidia.com/gpu": str(len(plan.gpus))}},
                }
            ],
        },
        "status": {"phase": "Pending"},
    }


async def sleep_until(t: float) -> None:
    while time.time() < t:
        await asyncio.sleep(min(0.2, max(0.0, t - time.time())))


async def play_pods(cluster: Cluster, plans: list[PodPlan], complete_jobs: bool = True) -> None:
    """The kubelet and the Job controller: pods Running at their start, Succeeded at their end, each Job
    Complete once its pods are done (unless ``complete_jobs`` is false)."""
    k8s = cluster.k8s
    events = sorted(
        [(p.start, "start", p) for p in plans] + [(p.end, "end", p) for p in plans], key=lambda e: e[0]
    )
    remaining = defaultdict(set)
    for p in plans:
        remaining[p.job].add(p.name)
    for at, kind, p in events:
        await sleep_until(at)
        if kind == "start":
            state = {"running": {"startedAt": iso(p.start)}}
            phase = "Running"
        else:
            state = {
                "terminated": {
                    "startedAt": iso(p.start),
                    "finishedAt": iso(p.end),
                    "exitCode": 0,
                    "reason": "Completed",
                }
            }
            phase = "Succeeded"
        await set_pod_status(cluster, p.name, phase, state)
        if not p.job:
            continue  # a pod of no Job
        if kind == "start":
            await k8s.patch(
                JOB_STATUS.format(name=p.job), json={"status": {"active": 1, "startTime": iso(p.start)}}
            )
        else:
            remaining[p.job].discard(p.name)
            if not remaining[p.job] and complete_jobs:
                await complete_job(cluster, p.job, sum(1 for q in plans if q.job == p.job), p.end)


async def complete_job(cluster: Cluster, job: str, succeeded: int, at: float) -> None:
    await cluster.k8s.patch(
        JOB_STATUS.format(name=job),
        json={
            "status": {
                "active": 0,
                "succeeded": succeeded,
                "completionTime": iso(at),
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": iso(at)}],
            }
        },
    )


async def export_measurements(kubeconfig: Path, *args: str) -> None:
    """``energaizer export-measurements`` in a subprocess, awaited (kmock serves from this event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "energaizer",
        "export-measurements",
        *args,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, stderr.decode()


async def measuring_operator(operator_factory, prom: Prometheus, **env: str):
    """The operator reading ``prom``, retrying every second, looking 5 s around each pod's run."""
    return await operator_factory(
        ENERGAIZER_PROMETHEUS_URL=prom.url,
        ENERGAIZER_MEASURE_INTERVAL_SECONDS="1",
        ENERGAIZER_MEASURE_MARGIN_SECONDS="5",
        **env,
    )


async def measured_stack(cluster: Cluster, operator_factory, tmp_path):
    """The fleet (booted 10 min ago) and its exporters, a real Prometheus scraping them and the operator
    reading it (:func:`measuring_operator`); skips without the prometheus binary. The caller stops them
    (:func:`shutdown`, then the operator)."""
    prometheus_binary()
    fleet, exporters = await start_fleet(cluster, boot=time.time() - 600.0)
    prom = Prometheus(tmp_path, {"dcgm-exporter": [f"127.0.0.1:{e.port}" for e in exporters]})
    prom.start()
    return fleet, exporters, prom, await measuring_operator(operator_factory, prom)


async def shutdown(prom: Prometheus, exporters: list[FakeExporter]) -> None:
    prom.stop()
    await asyncio.gather(*(e.stop() for e in exporters))


def measured_condition(cluster: Cluster, name: str) -> dict | None:
    return next(
        (c for c in cluster.aijob(name)["status"].get("conditions") or [] if c["type"] == "Measured"), None
    )


async def test_measured_energy_against_known_truth(cluster, operator_factory, tmp_path):
    """AIJobs of 1 to 4 GPUs run together on one fleet, each measured within 5 % of its true energy, two
    time-sliced onto one GPU ``GPUShared``; the series in Prometheus and export-measurements agree with
    the status.

    Alongside them "fallback": Kueue may admit a queue-labelled AIJob's Job on another allowed flavor
    than the placed type (docs/scheduler.md). The measurement was labelled with the placed type and
    compared with that type's prediction: status.measured.gpuType (what export-measurements writes for
    calibrate), energaizer_measured_energy_joules and energaizer_prediction_error_ratio all named the
    wrong GPU. Now they name the type it ran on."""
    prometheus_binary()
    c = cluster
    fleet, exporters = await start_fleet(c, boot=time.time() - 3600.0)
    metrics_port = free_port()  # Prometheus starts first: it takes seconds to begin scraping
    prom = Prometheus(
        tmp_path,
        {
            "dcgm-exporter": [f"127.0.0.1:{e.port}" for e in exporters],
            "energaizer-operator": [f"127.0.0.1:{metrics_port}"],
        },
    )
    prom.start()
    op = await measuring_operator(operator_factory, prom, ENERGAIZER_METRICS_PORT=str(metrics_port))
    try:
        # AIJobs of 1 to 4 GPUs; "left" and "right" will be time-sliced onto one GPU.
        shapes = {
            "solo": (1, 1),
            "pair": (2, 1),
            "wide": (2, 2),
            "quad": (4, 1),
            "left": (1, 1),
            "right": (1, 1),
            "fallback": (1, 1),
        }
        for name, (gpus, replicas) in shapes.items():
            labels = {"kueue.x-k8s.io/queue-name": "team-a"} if name == "fallback" else None
            await c.create(aijob(name, gpus=gpus, replicas=replicas, labels=labels))
        for name in shapes:
            await wait_for(lambda n=name: c.phase(n) == "Placed" and n in c.jobs(), timeout=60)
        placed = {name: c.aijob(name)["status"]["placement"]["gpuType"] for name in shapes}
        # the flavor Kueue admitted "fallback" on: allowed, not the placed one, and none the others ran on
        # (so that the operator's per-type series of "fallback" hold its measurement alone)
        allowed = c.jobs()["fallback"]["metadata"]["annotations"]["energaizer.io/gpu-types"].split(",")
        other = next((t for t in allowed if t not in placed.values()), None)
        assert other, f"fallback: no allowed type {allowed} besides those placed {placed}"
        fallback_status = c.aijob("fallback")["status"]
        predicted_other = {
            e["gpuType"]: e["energyJoules"] for e in fallback_status["estimates"] if e["feasible"]
        }
        ran_on = {**placed, "fallback": other}
        await wait_for(lambda: len(prom.query('up{job="dcgm-exporter"} == 1')) == len(exporters), timeout=60)

        # The scheduler: GPUs of the type each ran on; "wide" spans two nodes; "right" shares "left"'s GPU.
        seconds = {"solo": 8, "pair": 10, "wide": 9, "quad": 8, "left": 10, "right": 10, "fallback": 8}
        plans: list[PodPlan] = []
        for name, (gpus, replicas) in shapes.items():
            nodes_used: set[str] = set()
            for r in range(replicas):
                if name == "right":
                    left = next(p for p in plans if p.job == "left")
                    node_name, held = left.node, left.gpus
                else:
                    node_name, held = fleet.take(ran_on[name], gpus, avoid=nodes_used)
                nodes_used.add(node_name)
                plans.append(PodPlan(f"{name}-{r}-x{r}z", name, node_name, held, math.inf, math.inf))
        for p in plans:
            await c.post(POD, pod_body(p, c.jobs()[p.job]["metadata"]["uid"]))
        # every pod exists (Pending): all start together at the next whole second but one
        t0 = math.ceil(time.time()) + 1
        for p in plans:
            p.start, p.end = t0, t0 + seconds[p.job]
            for g in p.gpus:
                g.holds.append(
                    Hold("default", p.name, p.start, p.end, BUSY_WATTS[fleet.types[p.node]] + 5 * g.index)
                )
        pair_gpu = next(p for p in plans if p.job == "pair").gpus[0]
        pair_gpu.reloads.append(t0 + 4.5)  # a driver reload mid-run: its counter restarts from zero

        await play_pods(c, plans)

        truth = {
            name: sum(g.energy_joules(p.start, p.end) for p in plans if p.job == name for g in p.gpus)
            for name in shapes
        }
        measured = ("solo", "pair", "wide", "quad", "fallback")
        for name in measured:
            await wait_for(lambda n=name: c.aijob(n)["status"].get("measured"), timeout=60, interval=0.5)
        for name in ("left", "right"):
            await wait_for(
                lambda n=name: (measured_condition(c, n) or {}).get("reason") == "GPUShared", timeout=60
            )

        for name in measured:
            m = c.aijob(name)["status"]["measured"]
            gpus, replicas = shapes[name]
            assert m["source"] == "dcgm" and m["gpus"] == gpus * replicas, (name, m)
            print(  # the figures, for `pytest -s`
                f"{name}: {gpus * replicas} GPU(s) on {m['gpuType']}: energy {m['energyJoules']:.0f} J vs true "
                f"{truth[name]:.0f} J ({m['energyJoules'] / truth[name] - 1:+.3%}), duration "
                f"{m['durationSeconds']:.2f} s vs {seconds[name]} s, interpolated share "
                f"{m['interpolatedShare']:.1%}"
            )
            assert m["energyJoules"] == pytest.approx(truth[name], rel=0.05), (name, m, truth[name])
            assert m["durationSeconds"] == pytest.approx(seconds[name], rel=0.05), (name, m)
            assert m["averagePowerWatts"] == pytest.approx(truth[name] / seconds[name], rel=0.05), (name, m)
            assert m["gpuType"] == ran_on[name], (name, m, placed[name])
            uuids = {g.uuid for p in plans if p.job == name for g in p.gpus}
            assert {d["uuid"] for d in m["devices"]} == uuids, (name, m)
            cond = measured_condition(c, name)
            assert cond["status"] == "True" and cond["reason"] == "Measured", (name, cond)
        assert len({d["hostname"] for d in c.aijob("wide")["status"]["measured"]["devices"]}) == 2
        for name in ("left", "right"):
            assert "measured" not in c.aijob(name)["status"], name
            cond = measured_condition(c, name)
            assert cond["status"] == "False" and "time-slicing" in cond["message"], (name, cond)
            other_pod = "right" if name == "left" else "left"
            assert f"default/{other_pod}-0-x0z" in cond["message"], (name, cond)

        # "fallback": the operator's own series name the type it ran on and compare with that prediction
        fb = c.aijob("fallback")["status"]["measured"]
        text = await metrics_when(op.metrics_port, lambda t: "energaizer_prediction_error_ratio_count{" in t)
        assert f'energaizer_prediction_error_ratio_count{{gpu_type="{other}"}} 1.0' in text, (
            "fallback",
            text,
        )
        assert (
            f'energaizer_measured_energy_joules{{aijob="fallback",gpu_type="{other}",namespace="default"}}'
            in text
        ), ("fallback", text)
        ratio_sum = next(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(f'energaizer_prediction_error_ratio_sum{{gpu_type="{other}"}}')
        )
        assert ratio_sum == pytest.approx(fb["energyJoules"] / predicted_other[other], rel=1e-6), "fallback"

        # The operator's series in the same Prometheus.
        for name in measured:
            m = c.aijob(name)["status"]["measured"]
            expr = f'energaizer_measured_energy_joules{{aijob="{name}",namespace="default"}}'
            got = await wait_for(lambda e=expr: prom.query(e), timeout=90, interval=0.5)
            assert got[0]["metric"]["gpu_type"] == m["gpuType"], (name, got)
            assert float(got[0]["value"][1]) == pytest.approx(m["energyJoules"], rel=1e-6), (name, got)
        counts = await wait_for(
            lambda: (
                (r := prom.query("sum(energaizer_prediction_error_ratio_count)"))
                and float(r[0]["value"][1]) == len(measured)
                and r
            ),
            timeout=90,
            interval=0.5,
        )
        assert counts
        assert not prom.query('energaizer_measured_energy_joules{aijob=~"left|right"}', strict=True)

        # export-measurements: one row per measured AIJob, equal to its status.
        out, everywhere = tmp_path / "measured.csv", tmp_path / "all.csv"
        await asyncio.gather(
            export_measurements(tmp_path / "kubeconfig", "--namespace", "default", "-o", str(out)),
            export_measurements(tmp_path / "kubeconfig", "--all-namespaces", "-o", str(everywhere)),
        )
        assert everywhere.read_text() == out.read_text()
        rows = {r["aijob"]: r for r in csv.DictReader(out.open())}
        assert set(rows) == set(measured)
        for name in measured:
            status = c.aijob(name)["status"]
            m, row = status["measured"], rows[name]
            gpus, replicas = shapes[name]
            assert (
                row["gpu"] == m["gpuType"]
                and int(row["gpu_count"]) == gpus
                and int(row["replicas"]) == replicas
            ), (name, row)
            assert (
                row["model"] == "llama-3.1-8b" and row["task"] == "inference" and int(row["requests"]) == 2000
            ), (name, row)
            assert float(row["measured_job_energy_joules"]) == m["energyJoules"], (name, row)
            assert float(row["measured_energy_joules"]) == pytest.approx(
                m["energyJoules"] / replicas, rel=1e-9
            ), (name, row)
            assert float(row["measured_duration_seconds"]) == m["durationSeconds"], (name, row)
            # the prediction of the type it ran on ("fallback": its estimate there, not the placed type's)
            predicted = (
                predicted_other[other] if name == "fallback" else status["placement"]["predictedEnergyJoules"]
            )
            assert float(row["predicted_energy_joules"]) == predicted, (name, row)
    finally:
        await shutdown(prom, exporters)
    assert await op.stop() == 0


async def test_prometheus_down_is_retried_placing_goes_on_and_a_deleted_job_is_measured_from_its_pods(
    cluster, operator_factory, tmp_path
):
    """Two 2-GPU AIJobs whose one pod each runs 8 s; Prometheus has scraped past their end when it is
    stopped, then both Jobs complete: each measurement is the retryable ``PrometheusUnavailable``.

    "early": the operator keeps placing ("later"), and once the same Prometheus is back (its stored
    samples replayed) the AIJob is measured, within 5 %.

    "ttl": its finished Job is deleted (a short ``ttlSecondsAfterFinished``, or by hand) before Prometheus
    is back; its pod is still known (not yet collected by the garbage collector, or orphaned). The AIJob
    stayed Succeeded with the retryable ``PrometheusUnavailable`` for good: the measurer waited for the
    finished Job, which no longer exists. Now it is measured from its pod's window and GPUs, within 5 %."""
    c = cluster
    fleet, exporters, prom, op = await measured_stack(c, operator_factory, tmp_path)
    try:
        names = ("early", "ttl")
        for name in names:
            await c.create(aijob(name, gpus=2))
        for name in names:
            await wait_for(lambda n=name: c.phase(n) == "Placed" and n in c.jobs(), timeout=60)
        plans: dict[str, PodPlan] = {}
        for name in names:
            node_name, held = fleet.take(c.aijob(name)["status"]["placement"]["gpuType"], 2)
            plans[name] = PodPlan(f"{name}-0-abcde", name, node_name, held, math.inf, math.inf)
            await c.post(POD, pod_body(plans[name], c.jobs()[name]["metadata"]["uid"]))
        await wait_for(lambda: len(prom.query('up{job="dcgm-exporter"} == 1')) == len(exporters), timeout=60)
        t0 = math.ceil(time.time()) + 1  # both pods exist (Pending): they start together
        for p in plans.values():
            p.start, p.end = t0, t0 + 8
            for g in p.gpus:
                g.holds.append(Hold("default", p.name, p.start, p.end, BUSY_WATTS[fleet.types[p.node]]))
        await play_pods(c, list(plans.values()), complete_jobs=False)
        for p in plans.values():
            uuid = p.gpus[0].uuid
            await wait_for(
                lambda u=uuid, e=p.end: prom.query(f'timestamp({ENERGY}{{UUID="{u}"}}) > {e + 1}'),
                timeout=60,
                interval=0.5,
            )
        prom.stop()  # down when the Jobs complete
        for name in names:
            await complete_job(c, name, 1, plans[name].end)
        for name in names:
            cond = await wait_for(lambda n=name: measured_condition(c, n), timeout=60)
            assert cond["status"] == "False" and cond["reason"] == "PrometheusUnavailable", (name, cond)

        await c.create(aijob("later"))
        await wait_for(lambda: c.phase("later") == "Placed", timeout=60)
        await wait_for(lambda: c.phase("ttl") == "Succeeded", timeout=60)
        resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/ttl")  # the pod is left
        assert resp.status == 200
        await wait_for(lambda: "ttl" not in c.jobs(), timeout=60)
        for name in names:
            assert "measured" not in c.aijob(name)["status"], name

        prom.start()  # the same storage: the samples scraped before it stopped are replayed
        for name in names:
            m = await wait_for(lambda n=name: c.aijob(n)["status"].get("measured"), timeout=90, interval=0.5)
            p = plans[name]
            truth = sum(g.energy_joules(p.start, p.end) for g in p.gpus)
            print(  # the figures, for `pytest -s`
                f"{name}: energy {m['energyJoules']:.0f} J vs true {truth:.0f} J "
                f"({m['energyJoules'] / truth - 1:+.3%}), duration {m['durationSeconds']:.2f} s vs 8 s"
            )
            assert m["energyJoules"] == pytest.approx(truth, rel=0.05) and m["gpus"] == 2, (name, m, truth)
            assert m["durationSeconds"] == pytest.approx(8.0, rel=0.05), (name, m)
            assert measured_condition(c, name)["reason"] == "Measured", name
        assert c.phase("ttl") == "Succeeded"
        assert "PrometheusUnavailable" in op.log()
    finally:
        await shutdown(prom, exporters)
    assert await op.stop() == 0


async def test_hidden_sharing_on_a_time_sliced_node(cluster, operator_factory, tmp_path):
    """dcgm-exporter without virtual GPUs names a shared GPU with one pod only: on a node that GFD labels
    time-sliced, a pod that overlapped the job and is named on no GPU makes the job's number unprovable
    (GPUShared); on another time-sliced node, a neighbour seen on its own GPU does not."""
    prometheus_binary()
    c = cluster
    gpu_type = "a100-sxm4-80gb"
    gpus: dict[str, list[FakeGPU]] = {}
    exporters = []
    for name in ("ts-a", "ts-b"):
        body = node(name, PRODUCTS[gpu_type], 4)
        body["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "2"
        await c.add_node(body)
        gpus[name] = [
            FakeGPU(
                name, k, MODEL_NAMES[gpu_type], IDLE_WATTS[gpu_type], time.time() - 600, virtual_gpus=False
            )
            for k in range(4)
        ]
        exporters.append(FakeExporter(name, gpus[name]))
        await exporters[-1].start()
    prom = Prometheus(tmp_path, {"dcgm-exporter": [f"127.0.0.1:{e.port}" for e in exporters]})
    prom.start()
    op = await measuring_operator(operator_factory, prom)
    try:
        for name in ("visible", "alone"):
            await c.create(aijob(name))
        for name in ("visible", "alone"):
            await wait_for(lambda n=name: c.phase(n) == "Placed" and n in c.jobs(), timeout=60)
        await wait_for(lambda: len(prom.query('up{job="dcgm-exporter"} == 1')) == 2, timeout=60)
        plans = [
            PodPlan("intruder", "", "ts-a", [gpus["ts-a"][0]], math.inf, math.inf),  # hidden behind "visible"
            PodPlan("visible-0-aaaaa", "visible", "ts-a", [gpus["ts-a"][0]], math.inf, math.inf),
            PodPlan("alone-0-bbbbb", "alone", "ts-b", [gpus["ts-b"][1]], math.inf, math.inf),
            PodPlan("neighbour", "", "ts-b", [gpus["ts-b"][2]], math.inf, math.inf),
        ]
        for p in plans:
            pod = pod_body(p, c.jobs()[p.job]["metadata"]["uid"] if p.job else "")
            if not p.job:
                pod["metadata"].pop("ownerReferences")
                pod["metadata"]["labels"] = {}
            await c.post(POD, pod)
        t0 = math.ceil(time.time()) + 1  # every pod exists (Pending): they start together
        for p in plans:
            p.start, p.end = t0, t0 + 8
            for g in p.gpus:
                g.holds.append(Hold("default", p.name, p.start, p.end, BUSY_WATTS[gpu_type]))
        await play_pods(c, plans)
        m = await wait_for(lambda: c.aijob("alone")["status"].get("measured"), timeout=60, interval=0.5)
        truth = gpus["ts-b"][1].energy_joules(t0, t0 + 8)
        print(
            f"alone: energy {m['energyJoules']:.0f} J vs true {truth:.0f} J ({m['energyJoules'] / truth - 1:+.3%})"
        )
        assert m["energyJoules"] == pytest.approx(truth, rel=0.05)
        cond = await wait_for(
            lambda: (x := measured_condition(c, "visible")) and x["reason"] == "GPUShared" and x, timeout=60
        )
        assert "default/intruder" in cond["message"] and "names it on no GPU" in cond["message"]
        assert "measured" not in c.aijob("visible")["status"]
    finally:
        await shutdown(prom, exporters)
    assert await op.stop() == 0


async def set_pod_status(cluster: Cluster, name: str, phase: str, state: dict) -> None:
    """The kubelet's status of a one-container pod (image, imageID and restartCount as it writes them)."""
    resp = await cluster.k8s.patch(
        f"{POD}/{name}/status",
        json={
            "status": {
                "phase": phase,
                "containerStatuses": [
                    {
                        "name": "main",
                        "ready": phase == "Running",
                        "state": state,
                        "image": "trainer:1",
                        "imageID": "docker.io/library/trainer@sha256:0",
                        "restartCount": 0,
                    }
                ],
            }
        },
    )
    assert resp.status == 200, await resp.text()


async def test_pods_of_an_earlier_job_of_the_same_name_are_not_counted(cluster, operator_factory, tmp_path):
    """An AIJob deleted and created again (``kubectl delete`` then ``apply``) gets a Job of the same name, and
    pods of the earlier Job of that name may outlive it: orphaned (``--cascade=orphan``; the Job controller's
    labels still name the Job) or stuck terminating on a lost node. The measurer took the pods by the Job's
    name: "rerun" added the earlier run's GPU and time to its own (2 GPUs, the time of both runs), "stuck"
    waited for the stuck pod until ENERGAIZER_MEASURE_GIVE_UP_SECONDS (an hour) after its Job ended. Now a
    Job's pods are those whose owner is that Job's uid: each is measured from its own pod, within 5 %."""
    c = cluster
    fleet, exporters, prom, op = await measured_stack(c, operator_factory, tmp_path)
    earlier_run = None
    try:
        # the earlier runs: "rerun"'s pod ran 6 s and was left behind, "stuck"'s is on a lost node
        earlier: dict[str, PodPlan] = {}
        for name in ("rerun", "stuck"):
            node_name, held = fleet.take("l4", 1)
            earlier[name] = PodPlan(f"{name}-0-old{name[0]}1", name, node_name, held, math.inf, math.inf)
            body = pod_body(earlier[name], f"uid-of-an-earlier-{name}-job")
            if name == "rerun":  # orphaned: no ownerReference, the Job controller's labels stay
                body["metadata"].pop("ownerReferences")
                body["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = (
                    f"uid-of-an-earlier-{name}-job"
                )
            await c.post(POD, body)
        t0 = math.ceil(time.time()) + 1
        for p in earlier.values():
            p.start, p.end = t0, t0 + 6
            for g in p.gpus:
                g.holds.append(Hold("default", p.name, p.start, p.end, BUSY_WATTS["l4"]))
        # (no Job to complete); played meanwhile: the new runs overlap its end, on other GPUs
        earlier_run = asyncio.create_task(play_pods(c, [dataclasses.replace(earlier["rerun"], job="")]))
        stuck = earlier["stuck"]
        await set_pod_status(c, stuck.name, "Running", {"running": {"startedAt": iso(stuck.start)}})
        # deleted (the Job's garbage collection), but its lost node's kubelet never confirms it: it stays,
        # Running with a deletionTimestamp (kmock has no graceful deletion: a finalizer holds it)
        resp = await c.k8s.patch(f"{POD}/{stuck.name}", json={"metadata": {"finalizers": ["test/lost-node"]}})
        assert resp.status == 200, await resp.text()
        resp = await c.k8s.delete(f"{POD}/{stuck.name}")
        assert resp.status == 200, await resp.text()
        assert c.k8s.objects["v1/pods", "default", stuck.name].raw["metadata"]["deletionTimestamp"]

        for name in earlier:
            await c.create(aijob(name))
        for name in earlier:
            await wait_for(lambda n=name: c.phase(n) == "Placed" and n in c.jobs(), timeout=60)
        await wait_for(lambda: len(prom.query('up{job="dcgm-exporter"} == 1')) == len(exporters), timeout=60)
        plans = {}
        for name in earlier:
            node_name, held = fleet.take(c.aijob(name)["status"]["placement"]["gpuType"], 1)
            plans[name] = PodPlan(f"{name}-0-new{name[0]}2", name, node_name, held, math.inf, math.inf)
            await c.post(POD, pod_body(plans[name], c.jobs()[name]["metadata"]["uid"]))
        t1 = math.ceil(time.time()) + 1
        for p in plans.values():
            p.start, p.end = t1, t1 + 8
            for g in p.gpus:
                g.holds.append(Hold("default", p.name, p.start, p.end, BUSY_WATTS[fleet.types[p.node]]))
        await play_pods(c, list(plans.values()))
        await earlier_run  # long over: it ended 6 s after t0, the new runs 8 s after t1 > t0
        for name, p in plans.items():
            m = await wait_for(lambda n=name: c.aijob(n)["status"].get("measured"), timeout=60, interval=0.5)
            truth = p.gpus[0].energy_joules(p.start, p.end)
            print(  # the figures, for `pytest -s`
                f"{name}: energy {m['energyJoules']:.0f} J vs true {truth:.0f} J "
                f"({m['energyJoules'] / truth - 1:+.3%}), duration {m['durationSeconds']:.2f} s vs 8 s"
            )
            assert [d["uuid"] for d in m["devices"]] == [p.gpus[0].uuid], (name, m)
            assert [d["pods"] for d in m["devices"]] == [[p.name]], (name, m)
            assert m["energyJoules"] == pytest.approx(truth, rel=0.05), (name, m, truth)
            assert m["durationSeconds"] == pytest.approx(8.0, rel=0.05), (name, m)
    finally:
        if earlier_run is not None:
            earlier_run.cancel()
        await shutdown(prom, exporters)
    assert await op.stop() == 0
