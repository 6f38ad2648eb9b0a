"""The mock is strict where a real API server is (kmock_support.RealisticEmulator): these pin that down,
without an operator process."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from kmock_support import Fault, FaultyEmulator
from operator_testkit import AIJOBS, AIJOBS_URL, aijob, wait_for

URL = AIJOBS_URL.format(ns="default")


MINIMAL_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j", "namespace": "default"},
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "i"}]}}},
}


async def send(cluster, method: str, path: str, body: Any, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else None
    kwargs = {"data": data} if data is not None else {"json": body}
    resp = await cluster.k8s.request(method, path, headers={"Content-Type": content_type}, **kwargs)
    return resp.status, await resp.json()


def merge(cluster, method, path, body):
    return send(cluster, method, path, body, "application/merge-patch+json")


async def test_a_wrong_type_or_value_is_422_with_the_api_servers_status_body(cluster):
    body = aijob("typo")
    body["spec"]["resources"]["gpusPerReplica"] = "two"
    body["spec"]["placement"]["mode"] = "sometimes"
    status, answer = await send(cluster, "POST", URL, body)
    assert status == 422
    assert answer["kind"] == "Status" and answer["reason"] == "Invalid" and answer["code"] == 422
    assert answer["message"].startswith('AIJob.energaizer.io "typo" is invalid: ')
    fields = {c["field"] for c in answer["details"]["causes"]}
    assert fields == {"spec.resources.gpusPerReplica", "spec.placement.mode"}
    assert (AIJOBS, "default", "typo") not in cluster.k8s.objects or cluster.k8s.objects[
        AIJOBS, "default", "typo"
    ].deleted


async def test_out_of_range_and_missing_required_are_422(cluster):
    body = aijob("zero", gpus=0)
    assert (await send(cluster, "POST", URL, body))[0] == 422
    body = aijob("nowork")
    del body["spec"]["workload"]
    status, answer = await send(cluster, "POST", URL, body)
    assert status == 422
    assert answer["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.workload"}
    ]


async def test_nan_is_400_not_stored(cluster):
    raw = (
        b'{"apiVersion": "energaizer.io/v1alpha1", "kind": "AIJob", "metadata": {"name": "nan"},'
        b' "spec": {"workload": {"model": "gpt2", "powerLimitW": NaN}}}'
    )
    status, answer = await send(cluster, "POST", URL, raw)
    assert status == 400 and answer["reason"] == "BadRequest"


async def test_unknown_fields_are_pruned_silently_and_noted(cluster):
    body = aijob("extra")
    body["spec"]["resources"]["gpuz"] = 3
    body["spec"]["template"]["anything"] = {"kept": True}  # x-kubernetes-preserve-unknown-fields
    assert (await send(cluster, "POST", URL, body))[0] in (200, 201)
    stored = cluster.aijob("extra")
    assert "gpuz" not in stored["spec"]["resources"]
    assert stored["spec"]["template"]["anything"] == {"kept": True}
    status, _ = await merge(
        cluster,
        "PATCH",
        f"{URL}/extra/status",
        {
            "status": {
                "phase": "Pending",
                "placement": {
                    "gpuType": "l4",
                    "predictedEnergyJoules": 1.0,
                    "savingsJoules": 0.0,
                    "bogusJoules": 5,
                },
            }
        },
    )
    assert status == 200
    placement = cluster.aijob("extra")["status"]["placement"]
    assert placement["gpuType"] == "l4" and "bogusJoules" not in placement
    assert cluster.k8s.pruned == ["spec.resources.gpuz", "status.placement.bogusJoules"]
    cluster.k8s.pruned.clear()  # the fixture fails a test whose status fields were pruned


async def test_a_status_of_the_wrong_type_is_422_and_changes_nothing(cluster):
    await cluster.create(aijob("st"))
    before = cluster.aijob("st")
    status, answer = await merge(cluster, "PATCH", f"{URL}/st/status", {"status": {"phase": "Sleeping"}})
    assert status == 422 and answer["details"]["causes"][0]["field"] == "status.phase"
    assert cluster.aijob("st") == before


async def test_the_status_subresource(cluster):
    body = aijob("sub")
    body["status"] = {"phase": "Placed"}
    await cluster.create(body)
    created = cluster.aijob("sub")
    assert "status" not in created and created["metadata"]["generation"] == 1
    # /status changes nothing but status: not the spec, not the labels
    status, _ = await merge(
        cluster,
        "PATCH",
        f"{URL}/sub/status",
        {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"resources": {"replicas": 5}},
            "status": {"phase": "Pending"},
        },
    )
    assert status == 200
    obj = cluster.aijob("sub")
    assert obj["status"] == {"phase": "Pending"} and obj["spec"] == created["spec"]
    assert "labels" not in obj["metadata"] and obj["metadata"]["generation"] == 1
    # the main resource ignores status; metadata alone does not bump the generation
    status, _ = await merge(
        cluster, "PATCH", f"{URL}/sub", {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Placed"}}
    )
    obj = cluster.aijob("sub")
    assert status == 200 and obj["status"] == {"phase": "Pending"} and obj["metadata"]["labels"] == {"a": "b"}
    assert obj["metadata"]["generation"] == 1
    status, _ = await merge(cluster, "PATCH", f"{URL}/sub", {"spec": {"resources": {"replicas": 2}}})
    obj = cluster.aijob("sub")
    assert status == 200 and obj["spec"]["resources"]["replicas"] == 2 and obj["metadata"]["generation"] == 2
    # a spec change that breaks the schema is refused
    status, _ = await merge(cluster, "PATCH", f"{URL}/sub", {"spec": {"resources": {"replicas": -1}}})
    assert status == 422 and cluster.aijob("sub")["spec"]["resources"]["replicas"] == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda job: job["spec"].update(backoffLimitt=3), "spec"),
        (
            lambda job: job["spec"]["template"]["spec"].update(restartPolicy=7),
            "spec.template.spec.restartPolicy",
        ),
    ],
)
async def test_a_builtin_object_is_validated_against_the_kubernetes_schemas(cluster, change, field):
    job = copy.deepcopy(MINIMAL_JOB)
    path = "/apis/batch/v1/namespaces/default/jobs"
    bad = {**job, "spec": {**job["spec"], "template": {"spec": dict(job["spec"]["template"]["spec"])}}}
    change(bad)
    status, answer = await send(cluster, "POST", path, bad)
    assert status == 422 and answer["details"]["causes"][0]["field"] == field
    assert (await send(cluster, "POST", path, job))[0] in (200, 201)
    status, _ = await merge(cluster, "PATCH", f"{path}/j", {"spec": {"suspend": "yes"}})
    assert status == 422


@pytest.mark.kmock(cls=FaultyEmulator)
async def test_a_request_a_fault_holds_back_is_answered_whatever_came_meanwhile(cluster):
    """kmock finds a request's reaction by looking the request up in its log: one that a fault holds back
    (a slow server) must stay there however many requests are served meanwhile. It was answered 500 (no
    reaction matching the request) once 16 others had come: the "slow" API-fault scenario failed writes
    instead of delaying them."""
    release = asyncio.Event()
    fault = Fault(r"/aijobs/held$", frozenset({"GET"}), until=release, times=1)
    cluster.k8s.faults.append(fault)
    await cluster.create(aijob("held"))
    operator = {"User-Agent": "kopf/1.45"}  # faults apply to the operator's requests only
    held = asyncio.create_task(cluster.k8s.request("GET", f"{URL}/held", headers=operator))
    await wait_for(lambda: fault.hits == 1, timeout=60)
    for i in range(40):
        await cluster.create(aijob(f"other-{i}"))
    release.set()
    resp = await held
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["metadata"]["name"] == "held"


async def test_a_write_naming_another_uid_is_refused_as_by_the_api_server(cluster):
    """An object deleted and created again under its name is another object: a write that names the uid it
    was built for (``metadata.uid`` in its body) must not land on the new one. The mock took the patch: an
    AIJob kept its own uid and took the rest, a Job took the body's uid as its own. A real API server answers
    422 with its ``Status`` body (``metadata.uid`` is immutable: ``rest.BeforeUpdate``); a ``/status`` PATCH of
    a custom resource keeps the stored metadata (the status strategy), so there the uid is no precondition."""
    await cluster.create(aijob("again"))
    stored = cluster.aijob("again")
    uid = stored["metadata"]["uid"]
    stale = "0f0f0f0f-0000-4000-8000-000000000000"
    annotate = {"metadata": {"uid": stale, "annotations": {"energaizer.io/gpu-type": "l4"}}}
    status, answer = await merge(cluster, "PATCH", f"{URL}/again", annotate)
    assert status == 422 and answer["kind"] == "Status" and answer["reason"] == "Invalid"
    assert answer["message"] == (
        f'AIJob.energaizer.io "again" is invalid: metadata.uid: Invalid value: "{stale}": field is immutable'
    )
    assert answer["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{stale}": field is immutable',
            "field": "metadata.uid",
        }
    ]
    assert cluster.aijob("again") == stored

    status, _ = await merge(
        cluster, "PATCH", f"{URL}/again/status", {"metadata": {"uid": stale}, "status": {"phase": "Pending"}}
    )
    assert status == 200 and cluster.aijob("again")["metadata"]["uid"] == uid
    annotate["metadata"]["uid"] = uid
    status, _ = await merge(cluster, "PATCH", f"{URL}/again", annotate)
    assert status == 200
    assert cluster.aijob("again")["metadata"]["annotations"] == {"energaizer.io/gpu-type": "l4"}

    path = "/apis/batch/v1/namespaces/default/jobs"
    job = copy.deepcopy(MINIMAL_JOB)
    assert (await send(cluster, "POST", path, job))[0] in (200, 201)
    job_uid = cluster.jobs()["j"]["metadata"]["uid"]
    status, answer = await merge(
        cluster, "PATCH", f"{path}/j", {"metadata": {"uid": stale, "labels": {"a": "b"}}}
    )
    assert status == 422 and answer["details"]["causes"][0]["field"] == "metadata.uid"
    assert answer["message"].startswith('Job.batch "j" is invalid: metadata.uid: ')
    assert (
        cluster.jobs()["j"]["metadata"]["uid"] == job_uid and "labels" not in cluster.jobs()["j"]["metadata"]
    )


async def test_a_deletion_reaches_a_watch_from_a_version_after_the_objects_last_change(cluster):
    """The API server's ``DELETED`` event carries the resourceVersion of the deletion, newer than any the
    object had: a watch from a version taken after the object's last change (kopf's, from its list) sees
    the deletion. The mock sent the object's last version, and such a watch dropped the event as one it had
    seen: kopf's index kept a deleted Job (an AIJob waited for its name for good)."""
    path = "/api/v1/namespaces/default/configmaps"

    def configmap(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}

    assert (await send(cluster, "POST", path, configmap("old")))[0] in (200, 201)
    assert (await send(cluster, "POST", path, configmap("other")))[0] in (200, 201)
    resp = await cluster.k8s.get(path)
    since = int((await resp.json())["metadata"]["resourceVersion"])
    old_version = int(cluster.k8s.objects["v1/configmaps", "default", "old"]["metadata"]["resourceVersion"])
    assert old_version < since
    async with cluster.k8s.get(path, params={"watch": "true", "resourceVersion": str(since)}) as watch:

        async def event() -> dict[str, Any]:
            line = b""
            while not line.strip():
                line = await asyncio.wait_for(watch.content.readline(), timeout=30)
            return json.loads(line)

        # an event on the stream: the watch is open (a deletion from now on is after it began)
        assert (await send(cluster, "POST", path, configmap("probe")))[0] in (200, 201)
        added = await event()
        assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "probe"
        resp = await cluster.k8s.delete(f"{path}/old")
        assert resp.status == 200
        deleted = await event()
        assert deleted["type"] == "DELETED" and deleted["object"]["metadata"]["name"] == "old"
        version = int(deleted["object"]["metadata"]["resourceVersion"])
        assert version > int(added["object"]["metadata"]["resourceVersion"])
