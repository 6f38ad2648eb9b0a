"""Power-cap advice on placements (API mock): status.placement and the Job's annotations carry the power
limit that minimises energy within spec.placement.maxSlowdown."""

from __future__ import annotations

import pytest
from energaizer_operator.estimation import estimate_job
from energaizer_operator.models import AIJobSpec
from energaizer_operator.powercap import advise
from kmock_support import RealisticEmulator
from operator_testkit import AIJOBS_URL, aijob, wait_for

from energaizer.whatif import recommend_power_cap

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


async def test_placement_carries_the_power_cap_advice(gpu_cluster, operator_factory):
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("capped", requests=3000, gpus=1, replicas=2, maxSlowdown=0.25))
    await c.create(aijob("advice-only", requests=3000, mode="annotate"))
    for name in ("capped", "advice-only"):
        await wait_for(lambda n=name: c.phase(n) == "Placed", timeout=60)

    obj = c.aijob("capped")
    placement = obj["status"]["placement"]
    spec = AIJobSpec.model_validate(obj["spec"])
    advice = recommend_power_cap(spec.to_workload(), placement["gpuType"], max_slowdown=0.25)
    assert placement["recommendedPowerLimitWatts"] == pytest.approx(advice.power_limit_watts, abs=0.1)
    assert placement["recommendedSmClockMhz"] == pytest.approx(advice.sm_clock_mhz, abs=0.1)
    assert placement["predictedEnergyAtPowerLimitJoules"] == pytest.approx(2 * advice.energy_joules, rel=1e-6)
    assert placement["predictedEnergyAtPowerLimitJoules"] <= placement["predictedEnergyJoules"] * (1 + 1e-9)
    watts = f"{advice.power_limit_watts:.0f}"
    job = c.jobs()["capped"]
    assert job["metadata"]["annotations"]["energaizer.io/recommended-power-limit-watts"] == watts
    pod_annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["energaizer.io/recommended-power-limit-watts"] == watts
    assert obj["metadata"]["annotations"]["energaizer.io/recommended-power-limit-watts"] == watts

    # Annotate mode: advice in the status and on the AIJob, no Job; default budget 10 %.
    other = c.aijob("advice-only")
    spec = AIJobSpec.model_validate(other["spec"])
    gpu_type = other["status"]["placement"]["gpuType"]
    advice = recommend_power_cap(spec.to_workload(), gpu_type, max_slowdown=0.1)
    assert other["status"]["placement"]["recommendedPowerLimitWatts"] == pytest.approx(
        advice.power_limit_watts, abs=0.1
    )
    assert "advice-only" not in c.jobs()


async def test_bad_max_slowdown_is_refused_by_the_api(cluster):
    """The CRD carries the bound (0 to 10): the API server refuses the AIJob (422 naming the field)."""
    resp = await cluster.k8s.post(AIJOBS_URL.format(ns="default"), json=aijob("too-slow", maxSlowdown=-1))
    answer = await resp.json()
    assert resp.status == 422 and answer["reason"] == "Invalid"
    assert [x["field"] for x in answer["details"]["causes"]] == ["spec.placement.maxSlowdown"]


def test_advice_keeps_the_deadline():
    """A cap never makes a job miss its deadlineSeconds: with a 50 % slowdown budget and a deadline 2 %
    above the uncapped duration, the advice stays within the deadline (it advised 14 % longer)."""
    body = aijob("due", requests=2000, maxSlowdown=0.5)["spec"]
    free = advise(AIJobSpec.model_validate(body), "h100-sxm")
    assert free is not None
    (est,) = estimate_job(AIJobSpec.model_validate(body), ["h100-sxm"], None)
    deadline = est.duration_seconds * 1.02
    assert free.duration_seconds > deadline  # the budget alone would miss it
    body["placement"]["deadlineSeconds"] = deadline
    advice = advise(AIJobSpec.model_validate(body), "h100-sxm")
    assert advice is not None and advice.duration_seconds <= deadline
    assert advice.energy_joules < est.energy_joules  # still a saving within the deadline
