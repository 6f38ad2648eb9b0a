"""An AIJob's life after placement, as an ops team meets it: the spec edited, the owned Job deleted by hand."""

from __future__ import annotations

import asyncio
import copy
import datetime
import re

import pytest
from kmock_support import Fault, FaultyEmulator, RealisticEmulator
from operator_testkit import AIJOBS_URL, JOBS, aijob, metrics_when, node, wait_for

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)

MERGE = {"Content-Type": "application/merge-patch+json"}


def condition(obj, type_):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


async def edit(c, name, workload):
    path = AIJOBS_URL.format(ns="default") + f"/{name}"
    resp = await c.k8s.patch(path, json={"spec": {"workload": workload}}, headers=MERGE)
    assert resp.status == 200, await resp.text()
    return c.aijob(name)["metadata"]["generation"]


def handled(c, name, generation, phase):
    obj = c.aijob(name)
    status = obj.get("status") or {}
    return status.get("observedGeneration") == generation and status.get("phase") == phase


async def test_spec_edits_after_placement_keep_the_one_job(gpu_cluster, operator_factory):
    """``edited``: a spec edit that breaks a placed AIJob makes it Invalid (its Job runs on: Jobs are
    immutable); the fix that follows re-estimates it and records the Job it has, never a second Job. It was
    left in phase Invalid (with ``Invalid=False``) for good: an AIJob with a Job kept whatever phase it had.

    ``grown``: a valid spec edit (more GPUs, another model) of a Running AIJob: it is estimated again and
    keeps its phase and its one Job. The status said only "Estimated" with the new spec's best type, beside
    a placement and a Job of the old spec; now the condition and an Event say the Job runs on with the spec
    it was created from. (Two AIJobs of one operator: neither edit touches the other's Job or GPUs.)"""
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("edited"))
    await c.create(aijob("grown"))
    await wait_for(lambda: c.phase("edited") == "Placed" and c.phase("grown") == "Placed", timeout=60)
    job_type = c.jobs()["edited"]["metadata"]["annotations"]["energaizer.io/gpu-type"]
    await c.k8s.patch("/apis/batch/v1/namespaces/default/jobs/grown/status", json={"status": {"active": 1}})
    await wait_for(lambda: c.phase("grown") == "Running", timeout=60)
    placement = c.aijob("grown")["status"]["placement"]

    broken = await edit(c, "edited", {"model": "no-such-model"})
    path = AIJOBS_URL.format(ns="default") + "/grown"
    body = {"spec": {"workload": {"model": "llama-3.1-70b"}, "resources": {"gpusPerReplica": 4}}}
    resp = await c.k8s.patch(path, json=body, headers=MERGE)
    assert resp.status == 200, await resp.text()
    generation = c.aijob("grown")["metadata"]["generation"]
    await wait_for(lambda: handled(c, "edited", broken, "Invalid"), timeout=60)
    assert condition(c.aijob("edited"), "Invalid")["status"] == "True"

    fixed = await edit(c, "edited", {"model": "llama-3.1-8b"})
    await wait_for(lambda: handled(c, "edited", fixed, "Placed"), timeout=60)
    obj = c.aijob("edited")
    assert condition(obj, "Invalid")["status"] == "False"
    assert condition(obj, "Placed")["status"] == "True"
    assert obj["status"]["placement"]["gpuType"] == job_type
    assert obj["status"]["placement"]["jobName"] == "edited"

    await wait_for(lambda: handled(c, "grown", generation, "Running"), timeout=60)
    obj = c.aijob("grown")
    message = condition(obj, "Estimated")["message"]
    assert "the Job grown runs on with the spec it was created from" in message
    assert obj["status"]["placement"] == placement  # it describes the Job, which did not change
    await wait_for(lambda: any(e.get("reason") == "JobKept" for e in c.events("grown")), timeout=60)
    assert sorted(c.job_creates()) == ["edited", "grown"]


async def test_a_deleted_job_fails_its_aijob_instead_of_leaving_it_running(gpu_cluster, operator_factory):
    """The owned Job deleted by hand while it ran (or by a TTL before its end was mirrored): the AIJob said
    Running for ever and its GPUs were counted free. Now: phase Failed, reason JobDeleted, a Warning Event;
    no Job is created again (a deleted Job is often a cancelled one, and re-running costs the energy
    again). An annotate-mode AIJob, which has no Job, stays Placed."""
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("advice", mode="annotate"))
    await c.create(aijob("cancelled"))
    await wait_for(lambda: c.phase("advice") == "Placed" and c.phase("cancelled") == "Placed", timeout=60)
    await c.k8s.patch(
        "/apis/batch/v1/namespaces/default/jobs/cancelled/status", json={"status": {"active": 1}}
    )
    await wait_for(lambda: c.phase("cancelled") == "Running", timeout=60)

    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/cancelled")
    assert resp.status == 200
    await wait_for(lambda: c.phase("cancelled") == "Failed", timeout=60)
    running = condition(c.aijob("cancelled"), "Running")
    assert running["status"] == "False" and running["reason"] == "JobDeleted"
    assert "cancelled" in running["message"]
    await wait_for(
        lambda: any(
            e.get("reason") == "JobDeleted" and e.get("type") == "Warning" for e in c.events("cancelled")
        ),
        timeout=60,
    )
    assert c.phase("advice") == "Placed"
    assert c.job_creates() == ["cancelled"]


def job_pod(c, job_name, pod_name, node_name):
    """A pod of the Job ``job_name`` as the Job controller creates it, Running on ``node_name``."""
    job = c.jobs()[job_name]
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": "default",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job["metadata"]["uid"]}
            ],
        },
        "spec": {**template["spec"], "nodeName": node_name},
        "status": {"phase": "Running"},
    }


async def test_an_aijob_whose_finished_job_was_deleted_before_it_was_measured_gets_a_final_condition(
    gpu_cluster, operator_factory
):
    """With measured energy on, an AIJob failed with ``JobDeleted`` (its Job ``cut`` deleted while it ran)
    waited for ever for its Job to finish (it never does): no ``Measured`` condition, a measurement
    candidate for good. Now it gets a final ``Measured=False`` with reason ``JobDeleted`` (its pods' window
    is unknown, its run was cut short), and Prometheus is never asked (none listens at the URL).

    The Job ``done`` succeeded, then was deleted with its pods (``ttlSecondsAfterFinished``, or by hand) before
    the measurement ran (here: its pod was still being torn down; or Prometheus down, retries backing
    off). The AIJob stayed Succeeded without a ``Measured`` condition, a measurement candidate for good:
    the measurer waited for the finished Job, which no longer exists. Now, with no pod of it known, it
    gets the final ``Measured=False`` ``NoPods`` (and its Warning Event). An AIJob failed with
    ``JobDeleted`` gets its final ``Measured=False`` without a second ``JobDeleted`` Event (the placer's
    is the one): the measurer's own, posted after the condition, came before the ``NoPods`` one here."""
    c = gpu_cluster
    op = await operator_factory(
        ENERGAIZER_PROMETHEUS_URL="http://127.0.0.1:9", ENERGAIZER_MEASURE_INTERVAL_SECONDS="1"
    )
    await c.create(aijob("cut"))
    await c.create(aijob("done", candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase("cut") == "Placed" and c.phase("done") == "Placed", timeout=60)
    for name in ("cut", "done"):
        resp = await c.k8s.patch(
            f"/apis/batch/v1/namespaces/default/jobs/{name}/status", json={"status": {"active": 1}}
        )
        assert resp.status == 200
    await wait_for(lambda: c.phase("cut") == "Running" and c.phase("done") == "Running", timeout=60)

    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/cut")
    assert resp.status == 200
    measured = await wait_for(lambda: condition(c.aijob("cut"), "Measured"), timeout=60)
    assert measured["status"] == "False" and measured["reason"] == "JobDeleted"
    assert "the Job cut was deleted before it finished" in measured["message"]
    assert "run window are unknown" in measured["message"]
    assert "measured" not in c.aijob("cut")["status"]
    assert c.phase("cut") == "Failed"

    await c.post("/api/v1/namespaces/default/pods", job_pod(c, "done", "done-abcde", "l4-0"))
    done = {
        "active": 0,
        "succeeded": 1,
        "completionTime": "2026-01-01T00:00:00Z",
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }
    resp = await c.k8s.patch("/apis/batch/v1/namespaces/default/jobs/done/status", json={"status": done})
    assert resp.status == 200
    await wait_for(lambda: c.phase("done") == "Succeeded", timeout=60)
    assert condition(c.aijob("done"), "Measured") is None  # its pod is still Running: not measured yet
    for path in ("/apis/batch/v1/namespaces/default/jobs/done", "/api/v1/namespaces/default/pods/done-abcde"):
        resp = await c.k8s.delete(path)
        assert resp.status == 200

    measured = await wait_for(lambda: condition(c.aijob("done"), "Measured"), timeout=60)
    assert measured["status"] == "False" and measured["reason"] == "NoPods"
    assert "the Job done finished and was deleted before it was measured" in measured["message"]
    assert "measured" not in c.aijob("done")["status"]
    assert c.phase("done") == "Succeeded"
    await wait_for(lambda: any(e.get("reason") == "NoPods" for e in c.events("done")), timeout=60)
    assert [e["type"] for e in c.events("cut") if e.get("reason") == "JobDeleted"] == ["Warning"]
    assert "PrometheusUnavailable" not in op.log()


async def test_a_pod_on_a_lost_node_is_waited_for_said_and_then_given_up(gpu_cluster, operator_factory):
    """A Job failed with its pod on a node that went NotReady (``l4-down``): the pod was deleted, but that
    node's kubelet never confirms, so it stays ``Running`` with a ``deletionTimestamp`` past. ``kept``'s
    Job stays; ``gone``'s is deleted since (a TTL). The measurer waited for that pod without a word: for
    ``kept`` until ENERGAIZER_MEASURE_GIVE_UP_SECONDS after the Job ended, then measured the Job without it
    (here ``NoPods``, "no pod of the Job ran", which it did; with another pod that ended, a number without
    this one's GPUs: test_measured_units); for ``gone`` for good (the Job's end was known only from its
    pods' ends, and none ended): no ``Measured`` condition ever. Now each says
    ``Measured=False`` ``WaitingForData`` naming the pod, and past the give-up time (a second operator,
    ``ENERGAIZER_MEASURE_GIVE_UP_SECONDS=1``) the final ``NoDataGaveUp`` with its Warning Event; Prometheus
    is never asked (nothing listens at the URL)."""
    c = gpu_cluster
    env = {"ENERGAIZER_PROMETHEUS_URL": "http://127.0.0.1:9", "ENERGAIZER_MEASURE_INTERVAL_SECONDS": "1"}
    op = await operator_factory(**env)
    names = ("kept", "gone")
    for name in names:
        await c.create(aijob(name, candidateGpuTypes=["l4"]))
    await wait_for(lambda: all(c.phase(n) == "Placed" for n in names), timeout=60)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    failed = {
        "active": 0,
        "failed": 1,
        "conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": now}],
    }
    for name in names:
        pod = job_pod(c, name, f"{name}-abcde", "l4-down")
        pod["metadata"]["finalizers"] = ["test/lost-node"]  # kmock has no graceful deletion: this holds it
        pod["status"] = {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": pod["spec"]["containers"][0]["name"],
                    "ready": True,
                    "state": {"running": {"startedAt": now}},
                    "image": "trainer:1",
                    "imageID": "docker.io/library/trainer@sha256:0",
                    "restartCount": 0,
                }
            ],
        }
        await c.post("/api/v1/namespaces/default/pods", pod)
        resp = await c.k8s.delete(f"/api/v1/namespaces/default/pods/{name}-abcde")
        assert resp.status == 200
        resp = await c.k8s.patch(
            f"/apis/batch/v1/namespaces/default/jobs/{name}/status", json={"status": failed}
        )
        assert resp.status == 200
    await wait_for(lambda: all(c.phase(n) == "Failed" for n in names), timeout=60)
    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/gone")
    assert resp.status == 200
    for name in names:
        waiting = await wait_for(lambda n=name: condition(c.aijob(n), "Measured"), timeout=60)
        assert waiting["status"] == "False" and waiting["reason"] == "WaitingForData", (name, waiting)
        assert f"pod {name}-abcde (node l4-down) was deleted" in waiting["message"], (name, waiting)
        assert "its node does not confirm it" in waiting["message"], (name, waiting)
    assert await op.stop() == 0

    op = await operator_factory(**env, ENERGAIZER_MEASURE_GIVE_UP_SECONDS="1")
    for name in names:
        final = await wait_for(
            lambda n=name: (m := condition(c.aijob(n), "Measured")) and m["reason"] == "NoDataGaveUp" and m,
            timeout=60,
        )
        assert f"pod {name}-abcde (node l4-down) has not ended 1 s after the Job ended" in final["message"]
        assert "measured" not in c.aijob(name)["status"]
        assert c.phase(name) == "Failed"
        await wait_for(lambda n=name: any(e.get("reason") == "NoDataGaveUp" for e in c.events(n)), timeout=60)
    assert "PrometheusUnavailable" not in op.log()
    assert await op.stop() == 0


async def test_an_aijob_whose_job_name_was_taken_by_another_job_fails_with_job_deleted(
    gpu_cluster, operator_factory
):
    """The AIJob's Job was deleted while the operator was down (an upgrade) and the name taken by a Job of
    the user's (not owned by the AIJob). The operator read the Job by name, found one, and said nothing:
    the AIJob stayed Running for good (and a measurement candidate for good). Now a Job of that name that
    the AIJob does not own is not its Job: the AIJob fails with ``JobDeleted``; the user's Job is left
    alone."""
    c = gpu_cluster
    op = await operator_factory()
    await c.create(aijob("swap", candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase("swap") == "Placed", timeout=60)
    resp = await c.k8s.patch(
        "/apis/batch/v1/namespaces/default/jobs/swap/status", json={"status": {"active": 1}}
    )
    assert resp.status == 200
    await wait_for(lambda: c.phase("swap") == "Running", timeout=60)
    assert await op.stop() == 0

    theirs = copy.deepcopy(c.jobs()["swap"])
    theirs.pop("status", None)
    theirs["metadata"] = {"name": "swap", "namespace": "default", "labels": {"team": "theirs"}}
    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/swap")
    assert resp.status == 200
    await c.post("/apis/batch/v1/namespaces/default/jobs", theirs)

    op = await operator_factory()
    await wait_for(lambda: c.phase("swap") == "Failed", timeout=60)
    running = condition(c.aijob("swap"), "Running")
    assert running["reason"] == "JobDeleted" and "was deleted before it finished" in running["message"]
    assert c.jobs()["swap"]["metadata"]["labels"] == {"team": "theirs"}  # not touched
    assert c.job_creates() == ["swap", "swap"]  # the operator's before the restart, the user's: none since
    assert await op.stop() == 0


async def test_the_pods_of_a_deleted_job_keep_their_gpus_until_they_end(gpu_cluster, operator_factory):
    """The Job deleted while its pod runs (``kubectl delete job --cascade=orphan``, or the pod still in its
    grace period): the pod holds its 8 L4 GPUs. The operator left the pods of its Jobs out of the free
    GPUs (their Job counts them) also when the Job was gone, so the next AIJob was placed on GPUs in use."""
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("first", gpus=8, candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase("first") == "Placed", timeout=60)
    job = c.jobs()["first"]
    template = job["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "first-abcde",
            "namespace": "default",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "first", "uid": job["metadata"]["uid"]}
            ],
        },
        "spec": {**template["spec"], "nodeName": "l4-0"},
        "status": {"phase": "Running"},
    }
    await c.post("/api/v1/namespaces/default/pods", pod)
    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/first")
    assert resp.status == 200
    await wait_for(lambda: c.phase("first") == "Failed", timeout=60)  # the placer has seen the Job gone

    await c.create(aijob("second", gpus=8, candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase("second") in ("Placed", "Unschedulable"), timeout=60)
    assert c.phase("second") == "Unschedulable"
    resp = await c.k8s.delete("/api/v1/namespaces/default/pods/first-abcde")
    assert resp.status == 200
    await wait_for(lambda: c.phase("second") == "Placed", timeout=60)


async def test_an_aijob_deleted_and_created_again_waits_for_its_old_job_to_go(gpu_cluster, operator_factory):
    """``kubectl delete aijob x && kubectl apply -f x.yaml``: the garbage collector deletes the old AIJob's
    Job a moment later (kmock has no garbage collector: the test deletes it). The new AIJob's Job create
    conflicted with the old Job and failed the AIJob for good (JobNameConflict). Now it waits, says why
    (JobNameInUse), and is placed with a Job of its own once the old Job is gone."""
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("again"))
    await wait_for(lambda: c.phase("again") == "Placed", timeout=60)
    old_uid = c.aijob("again")["metadata"]["uid"]
    resp = await c.k8s.delete(AIJOBS_URL.format(ns="default") + "/again")
    assert resp.status == 200
    await c.create(aijob("again"))
    new_uid = c.aijob("again")["metadata"]["uid"]
    assert new_uid != old_uid
    await wait_for(lambda: (condition(c.aijob("again"), "Placed") or {}).get("reason") == "JobNameInUse")
    assert c.phase("again") == "Estimated"
    await wait_for(lambda: any(e.get("reason") == "JobNameInUse" for e in c.events("again")), timeout=60)

    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/again")  # the garbage collector
    assert resp.status == 200
    await wait_for(lambda: c.phase("again") == "Placed", timeout=60)
    (owner,) = c.jobs()["again"]["metadata"]["ownerReferences"]
    assert owner["uid"] == new_uid
    assert c.job_creates().count("again") == 2


@pytest.mark.kmock(cls=FaultyEmulator)
async def test_a_placement_of_an_aijob_replaced_meanwhile_stays_off_the_new_one(
    gpu_cluster, operator_factory
):
    """``kubectl delete aijob x && kubectl apply -f x.yaml`` while the placer recorded x's placement (its Job
    created, the annotation patch on its way: held here until the AIJob is replaced). The patch named the
    AIJob by name only: the old AIJob's annotations (GPU type, predicted energy) landed on the new one, and
    the status write that followed, built on the version the patch returned, wrote the old placement (phase
    Placed, the old AIJob's Job) into it. Now the patch names the uid it is for; the API server refuses it
    (422, ``metadata.uid`` is immutable), the placer drops that placement with one log line, and the new
    AIJob is estimated and placed on its own: it waits for the old Job's name (JobNameInUse) until the
    garbage collector deletes that Job, then gets a Job of its own; the placement is counted once."""
    c = gpu_cluster
    release = asyncio.Event()
    path = AIJOBS_URL.format(ns="default") + "/again"
    held = Fault(
        f"{re.escape(path)}$", frozenset({"PATCH"}), until=release, times=1, agent="OpenAPI-Generator/"
    )
    c.k8s.faults.append(held)
    op = await operator_factory()
    await c.create(aijob("again", candidateGpuTypes=["l4"]))
    await wait_for(lambda: held.hits == 1, timeout=60)
    old_uid = c.aijob("again")["metadata"]["uid"]
    (owner,) = c.jobs()["again"]["metadata"]["ownerReferences"]
    assert owner["uid"] == old_uid
    resp = await c.k8s.delete(path)
    assert resp.status == 200
    await c.create(aijob("again", candidateGpuTypes=["l4"]))
    new_uid = c.aijob("again")["metadata"]["uid"]
    assert new_uid != old_uid
    release.set()

    def settled():
        placed = condition(c.aijob("again"), "Placed") or {}
        return placed.get("reason") == "JobNameInUse" or c.phase("again") in ("Placed", "Failed")

    await wait_for(settled, timeout=60)
    obj = c.aijob("again")
    assert obj["metadata"]["uid"] == new_uid
    assert condition(obj, "Placed")["reason"] == "JobNameInUse", obj.get("status")
    assert "energaizer.io/gpu-type" not in (obj["metadata"].get("annotations") or {})
    assert "placement" not in obj["status"] and obj["status"]["phase"] == "Estimated"

    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/again")  # the garbage collector
    assert resp.status == 200
    await wait_for(lambda: c.phase("again") == "Placed", timeout=60)
    obj = c.aijob("again")
    (owner,) = c.jobs()["again"]["metadata"]["ownerReferences"]
    assert owner["uid"] == new_uid
    annotations = obj["metadata"]["annotations"]
    placement = obj["status"]["placement"]
    assert annotations["energaizer.io/gpu-type"] == placement["gpuType"] == "l4"
    assert c.job_creates() == ["again", "again"]
    text = await metrics_when(op.metrics_port, lambda t: 'energaizer_placements_total{gpu_type="l4"}' in t)
    assert 'energaizer_placements_total{gpu_type="l4"} 1.0' in text
    log = op.log()
    assert (
        len(re.findall(r"AIJob default/again was deleted and created again before its placement", log)) == 1
    )
    assert "Traceback" not in log


async def placed_with_job_watch_held(c, operator_factory, name: str, **env: str):
    """An operator whose Job watch is held from the start (kopf's Job index shows no Job until ``release``
    is set), and the AIJob ``name`` (L4 only) it has placed: (release, the held watch's Fault, operator)."""
    release = asyncio.Event()
    lagging = Fault(r"/jobs$", watch=True, until=release, agent="kopf/")
    c.k8s.faults.append(lagging)
    op = await operator_factory(**env)
    await c.create(aijob(name, candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase(name) == "Placed", timeout=60)
    return release, lagging, op


@pytest.mark.kmock(cls=FaultyEmulator)
@pytest.mark.parametrize("caught_up", [False, True], ids=["watch-lagging", "watch-caught-up"])
async def test_an_aijob_created_again_before_the_operator_saw_its_old_job_waits_for_it(
    gpu_cluster, operator_factory, caught_up
):
    """``kubectl delete aijob x && kubectl apply -f x.yaml`` while the operator's Job watch lags (held here
    from the start: its Job index never shows the old AIJob's Job). The new AIJob's Job create answered 409,
    the Job read back was not this AIJob's, and the AIJob failed for good (JobNameConflict), though that
    Job was the deleted AIJob's, which the garbage collector deletes. Now a Job owned by another AIJob is
    waited for as when the index shows it (JobNameInUse, phase Estimated); the operator reads it again
    until it is gone (``caught_up``: the watch goes on before the old Job is deleted, and the index holds
    the AIJob from then on), then places the AIJob with a Job of its own."""
    c = gpu_cluster
    release, lagging, op = await placed_with_job_watch_held(c, operator_factory, "again")
    old_uid = c.aijob("again")["metadata"]["uid"]
    (owner,) = c.jobs()["again"]["metadata"]["ownerReferences"]
    assert owner["uid"] == old_uid
    resp = await c.k8s.delete(AIJOBS_URL.format(ns="default") + "/again")
    assert resp.status == 200
    await c.create(aijob("again", candidateGpuTypes=["l4"]))
    new_uid = c.aijob("again")["metadata"]["uid"]
    assert new_uid != old_uid

    def settled():
        placed = condition(c.aijob("again"), "Placed") or {}
        return placed.get("reason") == "JobNameInUse" or c.phase("again") in ("Placed", "Failed")

    await wait_for(settled, timeout=60)
    obj = c.aijob("again")
    assert condition(obj, "Placed")["reason"] == "JobNameInUse", obj.get("status")
    assert obj["status"]["phase"] == "Estimated" and "placement" not in obj["status"]
    await wait_for(lambda: any(e.get("reason") == "JobNameInUse" for e in c.events("again")), timeout=60)
    assert c.job_creates() == ["again", "again"]  # the old AIJob's, the new one's (409)
    assert lagging.hits >= 1  # its Job index has seen no Job event
    if caught_up:  # the index shows the old Job: its GPU is taken (8 L4 GPUs, the new AIJob not placed)
        release.set()
        await metrics_when(op.metrics_port, lambda t: 'energaizer_free_gpus{gpu_type="l4"} 7.0' in t)
    resp = await c.k8s.delete("/apis/batch/v1/namespaces/default/jobs/again")  # the garbage collector
    assert resp.status == 200
    await wait_for(lambda: c.phase("again") in ("Placed", "Failed"), timeout=60)
    obj = c.aijob("again")
    assert obj["status"]["phase"] == "Placed", obj.get("status")
    (owner,) = c.jobs()["again"]["metadata"]["ownerReferences"]
    assert owner["uid"] == new_uid
    assert obj["status"]["placement"]["jobName"] == "again"
    assert c.job_creates() == ["again", "again", "again"]
    assert not any(e.get("reason") == "JobNameConflict" for e in c.events("again"))
    release.set()
    assert "Traceback" not in op.log()
    assert await op.stop() == 0


@pytest.mark.kmock(cls=FaultyEmulator)
@pytest.mark.parametrize("watch", ["held", "released-after-deletion", "released-before-deletion"])
async def test_a_job_deleted_before_the_operators_watch_showed_it_fails_its_aijob(
    gpu_cluster, operator_factory, watch
):
    """The placer creates an AIJob's Job and records it (Placed); its Job watch lags (held here from the
    start), so the Job index does not show the Job. The placer read the Job from the API once per AIJob
    version, found it (the watch is late) and never read it again on that version: the Job deleted before
    the index showed it (by hand, by a cancelling controller), the AIJob stayed Placed for good, its GPUs
    reserved. The periodic relist does not help: it drops only index entries, and this Job never had one.
    Now the Job is read again (after 1 s, the wait doubling up to 30 s) while the index does not show it:
    gone, the AIJob fails with ``JobDeleted``. ``held``: the watch is held until then (the deletion never
    comes through it); ``released-after-deletion``: the watch goes on right after the deletion and brings
    the Job's ADDED and DELETED events; ``released-before-deletion``: the index shows the Job, then its
    DELETED event (the AIJob, checked once on its version while the index did not show the Job, was not
    checked again when the Job left the index)."""
    c = gpu_cluster
    release, lagging, op = await placed_with_job_watch_held(
        c, operator_factory, "gone", ENERGAIZER_LOG_LEVEL="DEBUG"
    )
    job_path = "/apis/batch/v1/namespaces/default/jobs/gone"
    # the placer has seen the AIJob Placed without its Job in the index, and found the Job in the API
    await wait_for(lambda: c.k8s.received_times("GET", job_path, "OpenAPI-Generator/"), timeout=60)
    assert lagging.hits >= 1 and "gone" in c.jobs()
    if watch == "released-before-deletion":
        release.set()
        await wait_for(lambda: "the Job index shows the Job default/gone now" in op.log(), timeout=60)
    resp = await c.k8s.delete(job_path)
    assert resp.status == 200
    if watch == "released-after-deletion":
        release.set()
    await wait_for(lambda: c.phase("gone") != "Placed", timeout=60)
    running = condition(c.aijob("gone"), "Running")
    assert c.phase("gone") == "Failed" and running["reason"] == "JobDeleted", c.aijob("gone").get("status")
    assert "was deleted before it finished" in running["message"]
    await wait_for(
        lambda: any(e.get("reason") == "JobDeleted" and e.get("type") == "Warning" for e in c.events("gone")),
        timeout=60,
    )
    assert c.job_creates() == ["gone"]  # not created again
    # its GPU is no longer reserved for it (8 L4 GPUs free)
    await metrics_when(op.metrics_port, lambda t: 'energaizer_free_gpus{gpu_type="l4"} 8.0' in t)
    assert release.is_set() == (watch != "held")  # (held: the watch was held all along)
    release.set()
    assert "Traceback" not in op.log()
    assert await op.stop() == 0


@pytest.mark.kmock(cls=FaultyEmulator)
async def test_a_job_of_the_aijobs_name_not_owned_by_an_aijob_fails_it_with_job_name_conflict(
    gpu_cluster, operator_factory
):
    """A Job of the user's own (owned by no AIJob) has the AIJob's name: the AIJob fails for good
    (JobNameConflict) and the Job is left alone, also when the operator's Job index has not shown that
    Job (only a Job owned by another AIJob, a deleted one of the same name, is waited for)."""
    c = gpu_cluster
    release, _lagging, op = await placed_with_job_watch_held(c, operator_factory, "mine")
    theirs = copy.deepcopy(c.jobs()["mine"])
    theirs.pop("status", None)
    theirs["metadata"] = {"name": "taken", "namespace": "default", "labels": {"team": "theirs"}}
    await c.post("/apis/batch/v1/namespaces/default/jobs", theirs)

    await c.create(aijob("taken", candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase("taken") in ("Placed", "Failed"), timeout=60)
    placed = condition(c.aijob("taken"), "Placed")
    assert c.phase("taken") == "Failed" and placed["reason"] == "JobNameConflict", placed
    assert "is not owned by this AIJob" in placed["message"]
    await wait_for(lambda: any(e.get("reason") == "JobNameConflict" for e in c.events("taken")), timeout=60)
    job = c.jobs()["taken"]
    assert job["metadata"]["labels"] == {"team": "theirs"} and "ownerReferences" not in job["metadata"]
    assert c.job_creates() == ["mine", "taken", "taken"]  # the operator's, the user's, the operator's (409)
    release.set()
    assert await op.stop() == 0


async def test_identical_aijobs_in_two_namespaces_are_two_jobs(gpu_cluster, operator_factory):
    """The same name and spec in two namespaces: two AIJobs, each estimated, placed and steered with a Job
    in its own namespace; deleting one leaves the other (and its metrics) alone."""
    c = gpu_cluster
    await c.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}
    )
    op = await operator_factory()
    for ns in ("default", "team-b"):
        body = aijob("twin", gpus=4)
        body["metadata"]["namespace"] = ns
        await c.create(body)
    await wait_for(lambda: c.phase("twin") == "Placed" and c.phase("twin", "team-b") == "Placed", timeout=60)
    jobs = {k[1]: v.raw for k, v in c.k8s.objects.items() if k[0] == JOBS and not v.deleted}
    assert set(jobs) == {"default", "team-b"}
    for ns, job in jobs.items():
        assert job["metadata"]["ownerReferences"][0]["uid"] == c.aijob("twin", ns)["metadata"]["uid"]
    placed = [c.aijob("twin", ns)["status"]["placement"]["gpuType"] for ns in ("default", "team-b")]

    resp = await c.k8s.delete(AIJOBS_URL.format(ns="default") + "/twin")
    assert resp.status == 200
    line = 'energaizer_placement_info{aijob="twin",gpu_type="%s",namespace="%s"} 1.0'
    text = await metrics_when(op.metrics_port, lambda t: line % (placed[0], "default") not in t, timeout=60)
    assert line % (placed[1], "team-b") in text
    assert c.phase("twin", "team-b") == "Placed"


async def test_what_if_knobs_outside_every_gpu_range_are_invalid_and_lose_no_other_job(
    gpu_cluster, operator_factory
):
    """A what-if clock or power limit outside the range of every GPU type present: found by the estimator
    in the batch it shares with good AIJobs (not when the spec is parsed). That AIJob is Invalid with the
    field and the range, plus a Warning Event; the batch's other AIJobs are estimated and placed; a knob
    that one type present can take only rules the others out (probed: no defect)."""
    c = gpu_cluster
    op = await operator_factory()
    bodies = {
        "good": aijob("good"),
        "too-fast": aijob("too-fast"),
        "too-low": aijob("too-low"),
        "h100-only": aijob("h100-only"),
    }
    bodies["too-fast"]["spec"]["workload"]["frequencyMhz"] = 4000
    bodies["too-low"]["spec"]["workload"]["powerLimitW"] = 1
    bodies["h100-only"]["spec"]["workload"]["powerLimitW"] = 600  # the A100s stop at 400 W, the L4s at 72
    for body in bodies.values():
        await c.create(body)
    await wait_for(lambda: c.phase("good") == "Placed" and c.phase("h100-only") == "Placed", timeout=60)
    await wait_for(lambda: c.phase("too-fast") == "Invalid" and c.phase("too-low") == "Invalid", timeout=60)
    for name, field, unit in (("too-fast", "frequencyMhz", "MHz"), ("too-low", "powerLimitW", "W")):
        invalid = condition(c.aijob(name), "Invalid")
        assert invalid["status"] == "True" and invalid["reason"] == "InvalidSpec"
        assert (
            invalid["message"].startswith(f"spec.workload.{field}: ")
            and f" {unit} is outside " in invalid["message"]
        )
    await wait_for(
        lambda: all(
            any(e.get("reason") == "InvalidSpec" and e.get("type") == "Warning" for e in c.events(n))
            for n in ("too-fast", "too-low")
        ),
        timeout=60,
    )
    estimates = {e["gpuType"]: e for e in c.aijob("h100-only")["status"]["estimates"]}
    assert estimates["h100-sxm"]["feasible"] and not estimates["l4"]["feasible"]
    assert "power-limit range" in estimates["a100-sxm4-80gb"]["reason"]
    assert c.aijob("h100-only")["status"]["placement"]["gpuType"] == "h100-sxm"
    assert set(c.jobs()) == {"good", "h100-only"}
    assert "Traceback" not in op.log()


async def test_an_aijob_in_a_namespace_the_operator_does_not_watch_is_left_alone(
    gpu_cluster, operator_factory
):
    """``ENERGAIZER_NAMESPACES=default``: an AIJob in another namespace gets no status and no Job. The tests'
    ``python -m energaizer_operator`` (documented as the code path of ``energaizer operator``) ignored the
    variable and watched every namespace."""
    c = gpu_cluster
    await c.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    )
    op = await operator_factory(ENERGAIZER_NAMESPACES="default")
    assert "'namespaces': ['default']" in op.log()
    elsewhere = aijob("elsewhere")
    elsewhere["metadata"]["namespace"] = "other"
    await c.create(elsewhere)
    await c.create(aijob("here"))
    await wait_for(lambda: c.phase("here") == "Placed", timeout=60)
    assert "status" not in c.aijob("elsewhere", "other")
    assert set(c.jobs()) == {"here"}


async def test_gpus_held_by_a_pod_of_an_unwatched_namespace_are_not_free(gpu_cluster, operator_factory):
    c = gpu_cluster
    await c.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "holder", "namespace": "other"},
        "spec": {
            "nodeName": "l4-0",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
        },
        "status": {"phase": "Running"},
    }
    await c.post("/api/v1/namespaces/other/pods", pod)
    await operator_factory(ENERGAIZER_NAMESPACES="default")
    await c.create(aijob("needs-l4", gpus=8, candidateGpuTypes=["l4"]))
    await wait_for(lambda: c.phase("needs-l4") in ("Placed", "Unschedulable"), timeout=60)
    assert c.phase("needs-l4") == "Unschedulable"  # the only Ready L4 node's 8 GPUs are taken


def with_workload(body, **workload):
    body["spec"]["workload"].update(workload)
    return body


async def test_aijobs_that_fit_only_a_type_not_present_are_placed_when_it_joins(
    gpu_cluster, operator_factory
):
    """``powerLimitW: 900`` is outside every present type's range (H100 200-700 W, A100, L4) but within
    B200's and GB200's (an elastic pool scaled to zero): it was ``Invalid`` for good. Now it is
    ``Unschedulable``, naming the knob and the types it fits, and is placed once a B200 node joins (the
    new type is estimated then). 1500 W fits no catalog type: still ``Invalid`` (bad input).

    llama-3.1-70b on one GPU fits no type present either (H100, A100, L4: 142 GB needed): the AIJob was
    estimated only on the types present when it came, so the new type was "not a candidate" and it stayed
    Unschedulable for ever. Now it is estimated on the new type too, and placed there. (One scenario for
    both: the same node joins, and each AIJob fits it alone.)"""
    c = gpu_cluster
    await operator_factory()
    await c.create(with_workload(aijob("capped"), powerLimitW=900))
    await c.create(with_workload(aijob("absurd"), powerLimitW=1500))
    await c.create(aijob("large", model="llama-3.1-70b"))
    await wait_for(
        lambda: (
            c.phase("capped") == "Unschedulable"
            and c.phase("absurd") == "Invalid"
            and c.phase("large") == "Unschedulable"
        ),
        timeout=60,
    )
    placed = condition(c.aijob("capped"), "Placed")
    assert placed["status"] == "False" and placed["reason"] == "Unschedulable"
    assert "spec.workload.powerLimitW 900 W fits b200, gb200 (none present)" in placed["message"]
    assert "outside" in condition(c.aijob("absurd"), "Invalid")["message"]
    assert {e["gpuType"] for e in c.aijob("large")["status"]["estimates"]} == {
        "a100-sxm4-80gb",
        "h100-sxm",
        "l4",
    }
    assert not c.jobs()

    await c.add_node(node("b200-0", "NVIDIA-B200", 8))
    await wait_for(lambda: c.phase("capped") == "Placed" and c.phase("large") == "Placed", timeout=60)
    status = c.aijob("capped")["status"]
    assert status["placement"]["gpuType"] == "b200"
    assert c.jobs()["capped"]["metadata"]["annotations"]["energaizer.io/gpu-type"] == "b200"
    assert c.phase("absurd") == "Invalid"
    status = c.aijob("large")["status"]
    assert status["placement"]["gpuType"] == "b200"
    assert "b200" in {e["gpuType"] for e in status["estimates"]}
    assert sorted(c.jobs()) == ["capped", "large"]
