"""Acceptance scenarios (issue 3): a 200-job burst on limited GPUs, a restart mid-burst, malformed specs."""

from __future__ import annotations

import random
import signal
from collections import Counter

import numpy as np
import pytest
from kmock_support import RealisticEmulator
from operator_testkit import PRODUCTS, aijob, node, wait_for

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


def _optimum(c, names: list[str]) -> tuple[float, int]:
    """The solver's optimum for the whole burst as one problem (the operator's cached estimates)."""
    types = sorted(CAPACITY)
    cost = np.full((len(names), len(types)), np.inf)
    demand = np.zeros(len(names))
    for j, name in enumerate(names):
        obj = c.aijob(name)
        res = obj["spec"]["resources"]
        demand[j] = res["gpusPerReplica"] * res["replicas"]
        for e in obj["status"]["estimates"]:
            if e["feasible"]:
                cost[j, types.index(e["gpuType"])] = e["energyJoules"]
    problem = PlacementProblem(
        names, types, cost, demand, np.array([CAPACITY[t] for t in types], dtype=float)
    )
    result = solve(problem, time_limit_s=20, mip_rel_gap=1e-6)
    return result.objective, result.placed


async def test_burst_of_200_on_limited_gpus(cluster, operator_factory):
    c = cluster
    await _limited_cluster(c)
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="1")
    bodies = _burst(200)
    for body in bodies:
        await c.create(body)
    names = [b["metadata"]["name"] for b in bodies]
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=90, interval=0.5)

    phases = Counter(c.phase(n) for n in names)
    placed = [n for n in names if c.phase(n) == "Placed"]
    jobs = c.jobs()
    # Exactly one Job per placed AIJob, none created twice, GPUs per type within capacity.
    assert set(jobs) == set(placed)
    assert Counter(c.job_creates()) == Counter(placed)
    used = Counter()
    for name in placed:
        used[c.aijob(name)["status"]["placement"]["gpuType"]] += int(
            jobs[name]["metadata"]["annotations"]["energaizer.io/gpus"]
        )
    assert all(used[t] <= CAPACITY[t] for t in used), used
    for name in names:
        if c.phase(name) == "Unschedulable":
            cond = next(x for x in c.aijob(name)["status"]["conditions"] if x["type"] == "Placed")
            assert cond["status"] == "False" and cond["message"]
    total = sum(c.aijob(n)["status"]["placement"]["predictedEnergyJoules"] for n in placed)
    best, best_placed = _optimum(c, names)
    assert len(placed) == best_placed, phases
    assert total <= best * 1.01, (total, best)
    assert phases["Unschedulable"] > 0  # capacity really was limited
    assert await op.stop() == 0


async def test_kill_and_restart_mid_burst(cluster, operator_factory):
    c = cluster
    await _limited_cluster(c)
    op = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3")
    bodies = _burst(120, seed=11)
    for body in bodies[:80]:
        await c.create(body)
    names = [b["metadata"]["name"] for b in bodies]
    await wait_for(lambda: sum(c.phase(n) == "Placed" for n in names[:80]) >= 5, timeout=60, interval=0.05)
    await op.stop(signal.SIGKILL)  # no graceful shutdown
    for body in bodies[80:]:
        await c.create(body)  # created while no operator runs
    await op.start()
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=90, interval=0.5)

    placed = {n for n in names if c.phase(n) == "Placed"}
    assert set(c.jobs()) == placed
    creates = Counter(n for n in c.job_creates())
    created_ok = {n for n in creates if n in c.jobs()}
    assert created_ok == placed
    # A second create of a name can only be a 409 that the operator adopted, never a second Job.
    assert all(c.aijob(n)["status"]["placement"]["jobName"] == n for n in placed)
    used = Counter()
    for n in placed:
        used[c.aijob(n)["status"]["placement"]["gpuType"]] += int(
            c.jobs()[n]["metadata"]["annotations"]["energaizer.io/gpus"]
        )
    assert all(used[t] <= CAPACITY[t] for t in used), used
    assert await op.stop() == 0


MALFORMED = [
    ("spec.workload.model", lambda s: s["workload"].update(model="no-such-model")),
    ("spec.workload.inference.requests", lambda s: s["workload"]["inference"].update(requests=-5)),
    ("spec.workload.precision", lambda s: s["workload"].update(precision="fp64")),
    ("spec.workload", lambda s: s["workload"].update(task="training")),
    ("spec.workload", lambda s: s["workload"].pop("model")),
    ("spec.resources.gpusPerReplica", lambda s: s["resources"].update(gpusPerReplica=0)),
    ("spec.placement.mode", lambda s: s["placement"].update(mode="yolo")),
    ("spec.placement.candidateGpuTypes", lambda s: s["placement"].update(candidateGpuTypes=["tpu-v5"])),
    ("spec.template.spec.containers", lambda s: s.update(template={})),
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
        if i % 2 == 0:
            field, breaks = MALFORMED[(i // 2) % len(MALFORMED)]
            breaks(body["spec"])
            expected[body["metadata"]["name"]] = field
        else:
            good.append(body["metadata"]["name"])
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
