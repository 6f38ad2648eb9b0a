"""The real operator against kmock: bounded waiting (maxWaitSeconds) and the counterfactuals of a
placement. The operator's clock is never faked here: waiting is ended by a capacity change."""

from __future__ import annotations

import pytest
from kmock_support import RealisticEmulator
from operator_testkit import PRODUCTS, aijob, node, wait_for

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


def _condition(obj, type_):
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == type_), None)


# Long prompts: one GPU type is clearly the cheapest, by energy and by its energy over the idle draw it
# replaces (the placement objective), so the preferred types are that one alone.
LONG_PROMPTS = {"inputTokens": 4096, "outputTokens": 128, "batchSize": 32}


async def test_a_job_waits_for_its_best_type_and_takes_it_when_it_frees(gpu_cluster, operator_factory):
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("probe", mode="annotate", inference=LONG_PROMPTS))
    await wait_for(lambda: c.phase("probe") == "Placed", timeout=90)
    estimates = {e["gpuType"]: e for e in c.aijob("probe")["status"]["estimates"] if e["feasible"]}
    energy = {t: e["energyJoules"] for t, e in estimates.items()}
    best = min(energy, key=energy.get)
    assert len(energy) >= 2

    # the best type's only node is taken by one job
    await c.create(aijob("hog", gpus=8, candidateGpuTypes=[best]))
    await wait_for(lambda: c.phase("hog") == "Placed", timeout=90)
    await c.create(aijob("patient", maxWaitSeconds=86400, inference=LONG_PROMPTS))
    await c.create(aijob("hurry", maxWaitSeconds=0, inference=LONG_PROMPTS))
    await wait_for(lambda: c.phase("hurry") == "Placed", timeout=90)
    waiting = await wait_for(lambda: _condition(c.aijob("patient"), "Placed"), timeout=90)
    assert waiting["status"] == "False" and waiting["reason"] == "Waiting"
    assert best in waiting["message"] and "maxWaitSeconds" in waiting["message"]
    assert c.phase("patient") == "Estimated" and "patient" not in c.jobs()
    assert any(e["reason"] == "Waiting" for e in c.events("patient"))

    # maxWaitSeconds 0: the best free type at once, with what a plain scheduler would have spent
    hurry = c.aijob("hurry")["status"]["placement"]
    free_energy = {t: e for t, e in energy.items() if t != best}
    assert hurry["gpuType"] == min(free_energy, key=free_energy.get)
    assert hurry["worstEnergyJoules"] == pytest.approx(max(energy.values()), rel=1e-9)
    assert hurry["savingsJoules"] == pytest.approx(
        max(energy.values()) - hurry["predictedEnergyJoules"], rel=1e-9
    )
    # default order: most free GPUs first, ties by id; the best type has none free
    plain = sorted(free_energy)[0]
    assert hurry["plainSchedulerGpuType"] == plain
    assert hurry["plainSchedulerEnergyJoules"] == pytest.approx(energy[plain], rel=1e-9)
    assert hurry["savingsVsPlainSchedulerJoules"] == pytest.approx(
        energy[plain] - hurry["predictedEnergyJoules"], rel=1e-9
    )

    # a second node of the best type: the waiting job takes it
    await c.add_node(node(f"{best}-1", PRODUCTS[best], 8))
    await wait_for(lambda: c.phase("patient") == "Placed", timeout=90)
    placement = c.aijob("patient")["status"]["placement"]
    assert placement["gpuType"] == best
    assert _condition(c.aijob("patient"), "Placed")["status"] == "True"
    assert "patient" in c.jobs()
