"""The real operator process against kmock: estimation, placement, steering, mirroring, annotate, Kueue."""

from __future__ import annotations

import pytest
from energaizer_operator.display import readable_duration, readable_energy
from kmock_support import RealisticEmulator
from operator_testkit import JOBS, aijob, metrics_when, wait_for

from energaizer.catalog import get_gpu

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


async def test_estimate_place_steer_and_mirror(gpu_cluster, operator_factory):
    c = gpu_cluster
    op = await operator_factory()
    await c.create(aijob("chat", requests=5000, gpus=2, replicas=2))
    await c.create(aijob("advice", mode="annotate"))
    await c.create(aijob("queued", labels={"kueue.x-k8s.io/queue-name": "team-a"}))
    for name in ("chat", "advice", "queued"):
        await wait_for(lambda n=name: c.phase(n) == "Placed", timeout=30)

    obj = c.aijob("chat")
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    estimates = {e["gpuType"]: e for e in status["estimates"]}
    assert set(estimates) == {
        "h100-sxm",
        "a100-sxm4-80gb",
        "l4",
    }  # the unknown and NotReady nodes add nothing
    feasible = {t: e["energyJoules"] for t, e in estimates.items() if e["feasible"]}
    # the job's best type by the operator's objective: its energy above the idle draw its 4 GPUs replace
    # (the default static fleet, energaizer.placement.fleet)
    marginal = {
        t: e - 4 * estimates[t]["durationSeconds"] * get_gpu(t).idle_power_w for t, e in feasible.items()
    }
    best = min(marginal, key=marginal.get)
    placement = status["placement"]
    assert placement["gpuType"] == best
    assert placement["jobName"] == "chat"
    assert placement["savingsJoules"] == pytest.approx(max(feasible.values()) - feasible[best], rel=1e-6)
    # readable forms for `kubectl get aijobs` (printer columns)
    assert placement["predictedEnergy"] == readable_energy(placement["predictedEnergyJoules"])
    assert placement["predictedDuration"] == readable_duration(estimates[best]["durationSeconds"])
    assert placement["savings"].startswith(readable_energy(placement["savingsJoules"]))
    conds = {c_["type"]: c_["status"] for c_ in status["conditions"]}
    assert conds["Estimated"] == "True" and conds["Placed"] == "True"
    ann = obj["metadata"]["annotations"]
    assert ann["energaizer.io/gpu-type"] == best
    assert float(ann["energaizer.io/predicted-energy-joules"]) == pytest.approx(feasible[best], rel=1e-5)
    assert float(ann["energaizer.io/predicted-duration-seconds"]) > 0

    jobs = c.jobs()
    assert set(jobs) == {"chat", "queued"}  # annotate mode creates nothing
    job = jobs["chat"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert job["metadata"]["annotations"]["energaizer.io/gpu-type"] == best
    assert job["spec"]["parallelism"] == 2 and job["spec"]["suspend"] is False
    pod = job["spec"]["template"]
    assert pod["metadata"]["annotations"]["energaizer.io/gpu-type"] == best
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expr = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expr["key"] == "nvidia.com/gpu.product" and expr["operator"] == "In" and len(expr["values"]) == 1
    assert jobs["queued"]["spec"]["suspend"] is True
    assert jobs["queued"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert c.aijob("advice")["status"]["placement"]["gpuType"] in feasible
    assert "jobName" not in c.aijob("advice")["status"]["placement"]
    await wait_for(lambda: any(e.get("reason") == "Placed" for e in c.events("chat")), timeout=60)

    # Free GPUs: 8 per known type minus the 4 held by "chat" and 1 by "queued" (annotate holds none).
    # the series follow the watched statuses: wait until they have caught up, then check them
    placed_line = f'energaizer_placement_info{{aijob="chat",gpu_type="{best}",namespace="default"}} 1.0'
    text = await metrics_when(op.metrics_port, lambda t: "energaizer_free_gpus{" in t and placed_line in t)
    assert 'energaizer_unknown_gpu_nodes{product="ACME-X1000"} 1.0' in text
    assert placed_line in text

    # The Job controller is simulated: running, then complete -> mirrored to the AIJob.
    await c.k8s.patch("/apis/batch/v1/namespaces/default/jobs/chat/status", json={"status": {"active": 2}})
    await wait_for(lambda: c.phase("chat") == "Running")
    await c.k8s.patch(
        "/apis/batch/v1/namespaces/default/jobs/chat/status",
        json={
            "status": {"active": 0, "succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]}
        },
    )
    await wait_for(lambda: c.phase("chat") == "Succeeded")

    # Deleting the AIJob removes its series.
    await c.k8s.delete("/apis/energaizer.io/v1alpha1/namespaces/default/aijobs/chat")
    await metrics_when(op.metrics_port, lambda t: 'aijob="chat"' not in t)
    assert len([n for n in c.job_creates() if n == "chat"]) == 1
    assert c.k8s.objects[JOBS, "default", "chat"]  # no GC in kmock; nothing else touched it
    assert await op.stop() == 0
