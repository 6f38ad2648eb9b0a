"""Acceptance scenarios: a 200-job burst on limited GPUs, SIGKILLs mid-burst, malformed specs.

Every assertion holds for ANY batching of the burst (the batch boundaries depend on machine speed):
each logged batch is checked against the exact optimum of its own moment, never the whole burst.
"""

from __future__ import annotations

import json
import random
import signal
from collections import Counter

import numpy as np
import pytest
from kmock_support import RealisticEmulator
from operator_testkit import AIJOBS_URL, PRODUCTS, aijob, metrics_when, node, wait_for

from energaizer.placement import PlacementProblem, solve

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


SETTLED = {"Placed", "Unschedulable"}
CAPACITY = {"h100-sxm": 16, "a100-sxm4-80gb": 16, "l4": 32}  # 64 GPUs for ~200 jobs


async def _limited_cluster(c) -> None:
    for gpu_type, total in CAPACITY.items():
        for i in range(total // 8):
            await c.add_node(node(f"{gpu_type}-{i}", PRODUCTS[gpu_type], 8))


def _burst(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    models = ["llama-3.1-8b", "qwen2-1.5b", "gpt2"]
    return [
        aijob(
            f"job-{i:03d}",
            model=rng.choice(models),
            requests=rng.randint(200, 20000),
            gpus=rng.choice([1, 1, 2]),
        )
        for i in range(n)
    ]


def placement_batches(log: str) -> list[dict]:
    """The operator's ``placement batch {json}`` lines of one run, in order."""
    marker, out = "placement batch ", []
    for line in log.splitlines():
        if marker + "{" in line:
            try:
                out.append(json.loads(line[line.index(marker) + len(marker) :]))
            except json.JSONDecodeError:  # the last line of a SIGKILLed run may be cut short
                continue
    return out


def _batch_optimum(c, batch: dict) -> tuple[float, int]:
    """The exact optimum of one batch: its jobs, the free GPUs of its moment, the cached estimates."""
    names = [key.split("/", 1)[1] for key in batch["assignment"]]
    types = sorted(batch["free"])
    cost = np.full((len(names), len(types)), np.inf)
    demand = np.zeros(len(names))
    for j, name in enumerate(names):
        obj = c.aijob(name)
        res = obj["spec"]["resources"]
        demand[j] = res["gpusPerReplica"] * res["replicas"]
        for e in obj["status"]["estimates"]:
            t = e["gpuType"]
            if e["feasible"] and t in types and res["gpusPerReplica"] <= batch["largestFreeNode"].get(t, 0):
                cost[j, types.index(t)] = e["energyJoules"]
    capacity = np.array([batch["free"][t] for t in types], dtype=float)
    result = solve(PlacementProblem(names, types, cost, demand, capacity), time_limit_s=60, mip_rel_gap=1e-4)
    return result.objective, result.placed


def assert_settled_consistently(c, names: list[str], logs: list[str], *, failed_writes: bool = False) -> None:
    """What holds for ANY batching: every AIJob settled, one Job per placed steer-mode AIJob and
    none created twice, GPUs per type within capacity, Placed/Unschedulable conditions consistent,
    every batch within capacity and optimal for the moment it was decided.

    ``failed_writes`` (the API refused writes): an AIJob is decided again in a run only after its
    placement failed (logged), and its Job's type (the first decision's, when that Job was created
    although the API answered an error) is the one its status names."""
    placed = [n for n in names if c.phase(n) == "Placed"]
    jobs = c.jobs()
    assert set(jobs) == set(placed)
    created = Counter(n for n in c.job_creates() if n in jobs)
    assert all(created[n] >= 1 for n in placed)
    used = Counter()
    for name in placed:
        status = c.aijob(name)["status"]
        assert status["placement"]["jobName"] == name
        feasible = {e["gpuType"] for e in status["estimates"] if e["feasible"]}
        assert status["placement"]["gpuType"] in feasible
        assert (
            jobs[name]["metadata"]["annotations"]["energaizer.io/gpu-type"] == status["placement"]["gpuType"]
        )
        used[status["placement"]["gpuType"]] += int(
            jobs[name]["metadata"]["annotations"]["energaizer.io/gpus"]
        )
        cond = next(x for x in status["conditions"] if x["type"] == "Placed")
        assert cond["status"] == "True"
    assert all(used[t] <= CAPACITY[t] for t in used), used
    for name in names:
        status = c.aijob(name)["status"]
        for e in status["estimates"]:  # JSON: null numbers for infeasible types, never NaN
            assert e["feasible"] or e["energyJoules"] is None, e
        if status["phase"] == "Unschedulable":
            cond = next(x for x in status["conditions"] if x["type"] == "Placed")
            assert cond["status"] == "False" and cond["message"]
            assert "placement" not in status or status["placement"] is None

    runs = [placement_batches(log) for log in logs]
    assert any(runs), "no placement batch was logged"
    latest: dict[str, str | None] = {}  # the latest decision per AIJob (a killed run's may be redone)
    for batches in runs:
        given_in_run: Counter[str] = Counter()
        for batch in batches:
            _check_batch(c, batch)
            for key, gpu_type in batch["assignment"].items():
                latest[key] = gpu_type
                if gpu_type is not None:
                    assert key not in given_in_run or failed_writes, f"{key} placed twice"
                    given_in_run[key] += 1
        if failed_writes:
            log = "\n".join(logs)
            for key, times in given_in_run.items():
                failures = log.count(f"could not apply the placement of {key};")
                assert times <= 1 + failures, f"{key} placed {times} times after {failures} failures"
    given = {key.split("/", 1)[1]: t for key, t in latest.items() if t is not None}
    assert set(given) == set(placed)
    if not failed_writes:
        assert all(c.aijob(name)["status"]["placement"]["gpuType"] == t for name, t in given.items())


def _check_batch(c, batch: dict) -> None:
    """Within the free GPUs of its moment, and optimal for them."""
    load = Counter()
    for key, gpu_type in batch["assignment"].items():
        if gpu_type is not None:
            res = c.aijob(key.split("/", 1)[1])["spec"]["resources"]
            load[gpu_type] += res["gpusPerReplica"] * res["replicas"]
            assert res["gpusPerReplica"] <= batch["largestFreeNode"][gpu_type]
    assert all(load[t] <= batch["free"][t] for t in load), (batch["batch"], load, batch["free"])
    best, best_placed = _batch_optimum(c, batch)
    assert batch["placed"] == best_placed, batch["batch"]
    assert batch["objective"] <= best * 1.01 + 1e-9, (batch["batch"], batch["objective"], best)


def status_writes(c) -> int:
    return sum(
        r.method.endswith("PATCH") and "/aijobs/" in r.path and r.path.endswith("/status")
        for r in list(c.k8s.journal)
    )


def unschedulable_events(c, name: str) -> int:
    return sum(e.get("reason") == "Unschedulable" and e.get("type") == "Warning" for e in c.events(name))


async def test_burst_of_200_on_limited_gpus(cluster, operator_factory):
    c = cluster
    await _limited_cluster(c)
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="1")
    bodies = _burst(200)
    for body in bodies:
        await c.create(body)
    names = [b["metadata"]["name"] for b in bodies]
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=120, interval=0.5)
    assert await op.stop() == 0

    assert_settled_consistently(c, names, op.logs())
    phases = Counter(c.phase(n) for n in names)
    assert phases["Unschedulable"] > 0 and phases["Placed"] > 0  # capacity really was limited
    assert Counter(c.job_creates()) == Counter(n for n in names if c.phase(n) == "Placed")  # one process
    # One Unschedulable Event per change into Unschedulable, not one per retry.
    assert all(unschedulable_events(c, n) <= 1 for n in names)
    assert all(unschedulable_events(c, n) == 1 for n in names if c.phase(n) == "Unschedulable")


async def test_sigkill_at_random_moments_of_a_burst(cluster, operator_factory):
    """SIGKILL the operator at 4 seeded random moments of a burst (counted in writes, not time),
    restart it each time: nothing lost, nothing created twice, metrics rebuilt from the API.

    One replica without leader election: a restarted container of the image (pid 1 of the same pod, so
    the same Lease identity) takes its Lease back at once, while a restarted test process has another
    pid and stood by for the killed one's Lease to expire (~5 s per restart, half of this test). Here, as
    in the image, the restarted process writes as soon as it has listed the cluster; a standby taking a
    killed leader's Lease over is test_operator_ha.py's."""
    c = cluster
    await _limited_cluster(c)
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3", ENERGAIZER_LEADER_ELECTION="false")
    bodies = _burst(150, seed=11)
    names = [b["metadata"]["name"] for b in bodies]
    rng = random.Random(2024)
    for body in bodies[:100]:
        await c.create(body)
    for kill in range(4):
        # The moment: after a seeded random number of AIJob status writes by this run.
        writes, before = rng.randint(1, 80), status_writes(c)
        await wait_for(
            lambda w=writes, b=before: status_writes(c) - b >= w or all(c.phase(n) in SETTLED for n in names),
            timeout=90,
            interval=0.02,
        )
        await op.stop(signal.SIGKILL)  # no graceful shutdown
        if kill == 1:
            for body in bodies[100:]:
                await c.create(body)  # created while no operator runs
        await op.start()
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=120, interval=0.5)

    assert_settled_consistently(c, names, op.logs())
    placed = {n for n in names if c.phase(n) == "Placed"}
    # A second create of a name can only be a 409 that the operator adopted, never a second Job.
    assert {n for n in c.job_creates() if n in c.jobs()} == placed
    # Metrics rebuilt from the API: every feasible estimate of every AIJob, also those estimated
    # by an earlier (killed) process.
    feasible = sum(e["feasible"] for n in names for e in c.aijob(n)["status"]["estimates"])
    # both series families follow the watched statuses: wait until the last watch event has reached them
    text = await metrics_when(
        op.metrics_port,
        lambda t: (
            t.count("energaizer_predicted_energy_joules{") >= feasible
            and t.count("energaizer_placement_info{") >= len(placed)
        ),
        timeout=60,
    )
    assert text.count("energaizer_predicted_energy_joules{") == feasible
    assert text.count("energaizer_placement_info{") == len(placed)
    assert await op.stop() == 0


# Specs the CRD schema admits and the operator refuses (Invalid condition + Event) ...
MALFORMED = [
    ("spec.workload.model", lambda s: s["workload"].update(model="no-such-model")),
    ("spec.workload", lambda s: s["workload"].update(task="training")),
    ("spec.workload", lambda s: s["workload"].pop("model")),
    ("spec.placement.candidateGpuTypes", lambda s: s["placement"].update(candidateGpuTypes=["tpu-v5"])),
    ("spec.template.spec.containers", lambda s: s.update(template={})),
]
# ... and specs the API server refuses (422 Invalid, from the CRD's openAPIV3Schema): never stored, so the
# operator never sees them.
REFUSED = [
    ("spec.workload.inference.requests", lambda s: s["workload"]["inference"].update(requests=-5)),
    ("spec.workload.precision", lambda s: s["workload"].update(precision="fp64")),
    ("spec.resources.gpusPerReplica", lambda s: s["resources"].update(gpusPerReplica=0)),
    ("spec.placement.mode", lambda s: s["placement"].update(mode="yolo")),
    ("spec.workload", lambda s: s.pop("workload")),
]


async def test_malformed_mixed_with_good(gpu_cluster, operator_factory):
    c = gpu_cluster
    for i in range(4):  # room for every good job (50 GPUs)
        await c.add_node(node(f"l4-extra-{i}", PRODUCTS["l4"], 8))
    op = await operator_factory()
    expected: dict[str, str] = {}
    good: list[str] = []
    for i in range(100):
        body = aijob(f"mix-{i:03d}", requests=300)
        name = body["metadata"]["name"]
        if i % 4 == 0:
            field, breaks = MALFORMED[(i // 4) % len(MALFORMED)]
            breaks(body["spec"])
            expected[name] = field
        elif i % 4 == 2:
            field, breaks = REFUSED[(i // 4) % len(REFUSED)]
            breaks(body["spec"])
            resp = await c.k8s.post(AIJOBS_URL.format(ns="default"), json=body)
            answer = await resp.json()
            assert resp.status == 422 and answer["reason"] == "Invalid", (name, answer)
            assert [x["field"] for x in answer["details"]["causes"]] == [field], (name, answer)
            continue
        else:
            good.append(name)
        await c.create(body)
    await wait_for(lambda: all(c.phase(n) == "Invalid" for n in expected), timeout=60, interval=0.5)
    await wait_for(lambda: all(c.phase(n) == "Placed" for n in good), timeout=60, interval=0.5)
    for name, field in expected.items():
        status = c.aijob(name)["status"]
        cond = next(x for x in status["conditions"] if x["type"] == "Invalid")
        assert cond["status"] == "True" and cond["reason"] == "InvalidSpec"
        assert cond["message"].startswith(field), (name, cond["message"])
        assert "estimates" not in status or status["estimates"] is None
    await wait_for(
        lambda: all(
            any(e.get("reason") == "InvalidSpec" and e.get("type") == "Warning" for e in c.events(n))
            for n in expected
        ),
        timeout=20,
    )
    assert not set(c.jobs()) & set(expected)
    # Handled once: no retry loop on the malformed ones.
    assert "Traceback" not in op.log()
    assert await op.stop() == 0
