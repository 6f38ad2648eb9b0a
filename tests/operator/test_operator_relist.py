"""The relist (energaizer_operator.relist) in process: index entries whose objects a fresh list lacks are
left out of what the loops read, but never an object created after the list was taken; a failed list
drops nothing; a gone AIJob's metrics go; the list is paged. The end-to-end case (a pod deleted during
an outage, 410 Gone) is test_operator_api_faults.test_a_pod_deleted_while_the_watch_was_down_frees_its_gpus.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from energaizer_operator import kube
from energaizer_operator.inventory import PodGPUs, compute_capacity, node_gpus, pod_gpus
from energaizer_operator.loops import Indices
from energaizer_operator.metrics import Metrics
from energaizer_operator.records import AIJobRecord
from energaizer_operator.relist import Relister, collection_paths, gone_uids
from energaizer_operator.settings import OperatorSettings
from prometheus_client import generate_latest

from energaizer.errors import InvalidInputError


def _pod(uid: str, gpus: int) -> PodGPUs:
    return PodGPUs("l4-0", gpus, uid=uid)


def _record(uid: str, name: str) -> AIJobRecord:
    return AIJobRecord("default", name, uid, 1, None, 1, None)


def _indices(pods: dict[str, PodGPUs], aijobs: dict[str, AIJobRecord] | None = None) -> Indices:
    node = node_gpus(
        {
            "metadata": {"name": "l4-0", "uid": "node-1", "labels": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}},
        },
        product_label="nvidia.com/gpu.product",
        gpu_resource="nvidia.com/gpu",
        mapping={},
    )
    # kopf's Index maps an index key to a store of values; here one key per object
    return Indices(
        aijobs={uid: [r] for uid, r in (aijobs or {}).items()},
        nodes={None: [node]},
        pods={uid: [p] for uid, p in pods.items()},
        jobs={},
    )


def _free(indices: Indices) -> int:
    return compute_capacity(indices.live(indices.nodes), indices.live(indices.pods), []).free["l4"]


def test_the_index_values_carry_the_objects_uids():
    body = {
        "metadata": {"name": "p", "namespace": "default", "uid": "pod-1"},
        "spec": {"nodeName": "n", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
    }
    assert pod_gpus(body, gpu_resource="nvidia.com/gpu") == PodGPUs("n", 2, uid="pod-1")


def test_gone_are_the_uids_indexed_before_the_list_and_not_listed():
    assert gone_uids({"a", "b"}, {"a"}) == {"b"}
    # "c" was created after the list was taken: not in the list, not in the snapshot either
    assert gone_uids({"a", "b"}, {"a", "b"}) == set()
    assert "c" not in gone_uids({"a", "b"}, {"a"})


def test_the_interval_is_a_setting():
    assert OperatorSettings().relist_interval_seconds == 300
    assert OperatorSettings.from_env({"ENERGAIZER_RELIST_INTERVAL_SECONDS": "0"}).relist_interval_seconds == 0
    with pytest.raises(InvalidInputError, match="ENERGAIZER_RELIST_INTERVAL_SECONDS"):
        OperatorSettings.from_env({"ENERGAIZER_RELIST_INTERVAL_SECONDS": "-1"})


def test_paths_follow_the_watched_namespaces():
    assert collection_paths("pods", []) == ["/api/v1/pods"]
    assert collection_paths("pods", ["ml", "research"]) == [
        "/api/v1/namespaces/ml/pods",
        "/api/v1/namespaces/research/pods",
    ]
    assert collection_paths("nodes", ["ml"]) == ["/api/v1/nodes"]  # cluster-scoped
    assert collection_paths("jobs", ["ml"]) == ["/apis/batch/v1/namespaces/ml/jobs"]
    assert collection_paths("aijobs", []) == ["/apis/energaizer.io/v1alpha1/aijobs"]


async def test_a_pod_deleted_behind_the_index_frees_its_gpus_and_one_created_during_the_list_stays():
    pods = {"old": _pod("old", 8)}
    indices = _indices(pods)
    assert _free(indices) == 0

    def list_uids(path: str) -> set[str]:
        if path.endswith("/pods"):
            # while the list request is under way a new pod appears (its watch event is indexed), after
            # the API server took the list: the list has neither the deleted pod nor the new one
            pods["new"] = _pod("new", 2)
            indices.pods["new"] = [pods["new"]]
            return set()
        return {"node-1"}

    relister = Relister(OperatorSettings(), Metrics(), indices, list_uids=list_uids)
    assert await relister.relist() == {"old"}
    assert _free(indices) == 6  # the deleted pod's 8 GPUs are free; the new pod's 2 still held
    assert [p.uid for p in indices.live(indices.pods)] == ["new"]
    # the next pass lists the new pod: it stays, the deleted one stays gone
    relister.list_uids = lambda path: {"new"} if path.endswith("/pods") else {"node-1"}
    assert await relister.relist() == set()
    assert _free(indices) == 6


async def test_a_failed_list_drops_nothing():
    indices = _indices({"p": _pod("p", 8)})

    def failing(path: str) -> set[str]:
        raise kube.ApiException(status=403, reason="Forbidden")

    relister = Relister(OperatorSettings(), Metrics(), indices, list_uids=failing)
    assert await relister.relist() == set()
    assert _free(indices) == 0


async def test_a_gone_aijob_loses_its_metrics_unless_a_live_one_has_its_name():
    metrics = Metrics()
    estimate = [
        {
            "gpuType": "l4",
            "feasible": True,
            "energyJoules": 1.0,
            "durationSeconds": 2.0,
            "averagePowerWatts": 0.5,
        }
    ]
    for name in ("deleted", "recreated"):
        metrics.set_estimates("default", name, estimate)
    aijobs = {
        "a1": _record("a1", "deleted"),
        "a2": _record("a2", "recreated"),  # deleted, then created again with the same name (a3)
        "a3": _record("a3", "recreated"),
    }
    indices = _indices({}, aijobs)
    relister = Relister(
        OperatorSettings(),
        metrics,
        indices,
        list_uids=lambda path: {"a3"} if path.endswith("/aijobs") else {"node-1"},
    )
    assert await relister.relist() == {"a1", "a2"}
    assert [r.uid for r in indices.live(indices.aijobs)] == ["a3"]
    text = generate_latest(metrics.registry).decode()
    assert 'aijob="deleted"' not in text
    assert 'aijob="recreated"' in text


class _Pages:
    """An API client that serves a collection in pages of ``limit`` objects (``continue`` = offset)."""

    def __init__(self, uids: list[str]) -> None:
        self.uids, self.requests = uids, []

    def param_serialize(self, method: str, path: str, *, query_params: Any, header_params: Any, **_: Any):
        return method, (path, dict(query_params)), header_params, None, None

    def call_api(self, method: str, url: Any, **_: Any):
        _path, query = url
        self.requests.append(query)
        start, limit = int(query.get("continue") or 0), int(query["limit"])
        end = start + limit
        page = {"items": [{"metadata": {"uid": u}} for u in self.uids[start:end]], "metadata": {}}
        if end < len(self.uids):
            page["metadata"]["continue"] = str(end)
        body = json.dumps(page).encode()
        return type("Response", (), {"status": 200, "reason": "OK", "read": lambda self: body})()


def test_the_list_is_paged(monkeypatch: pytest.MonkeyPatch):
    client = _Pages([f"u{i}" for i in range(7)])
    monkeypatch.setattr(kube, "api_client", lambda: client)
    assert kube.list_uids("/api/v1/pods", page_size=3) == {f"u{i}" for i in range(7)}
    assert [q.get("continue") for q in client.requests] == [None, "3", "6"]
    assert all(q["limit"] == 3 and "resourceVersion" not in q for q in client.requests)


def test_the_api_timeout_setting_is_read_and_bounded() -> None:
    assert OperatorSettings().api_timeout_seconds == 30
    assert OperatorSettings.from_env({"ENERGAIZER_API_TIMEOUT_SECONDS": "8"}).api_timeout_seconds == 8
    with pytest.raises(InvalidInputError, match="ENERGAIZER_API_TIMEOUT_SECONDS"):
        OperatorSettings.from_env({"ENERGAIZER_API_TIMEOUT_SECONDS": "0"})


async def test_a_job_pod_deleted_behind_the_index_does_not_hold_its_measurement_back(monkeypatch):
    """The measured-energy indices (measured_handlers.py) are kopf indices too: a pod of the Job deleted
    while the watch was down (evicted, and replaced by one that ran the work) stays there ``Running``, and
    the measurement waited for it to end (``measureGiveUpSeconds``, an hour), then counted it. The relist
    finds it gone (also a pod that only that index holds: no GPUs, so not in ``gpu_pods``) and the
    measurement leaves it out: the Job's energy is measured now, from the pod that ran."""
    import time

    from aiohttp import web
    from energaizer_operator.measured import PodRun
    from energaizer_operator.measured_handlers import Candidate, JobRun, Measurer
    from energaizer_operator.state import OperatorState
    from test_measured_units import GPU, capture_status_writes, serve_query

    t0 = time.time() - 300.0  # ended minutes ago: well within the give-up time
    ran = PodRun("ns", "job-ran", "n1", t0 + 10, t0 + 70, "Succeeded", "job", 1, uid="p-ran", job_uid="j-1")
    evicted = PodRun(
        "ns", "job-evicted", "n1", t0 + 5, None, "Running", "job", 1, uid="p-evicted", job_uid="j-1"
    )
    helper = PodRun(
        "ns", "job-helper", "n1", t0 + 5, None, "Running", "job", 0, uid="p-helper", job_uid="j-1"
    )
    watts = 300.0
    labels = {**GPU, "namespace": "ns", "pod": ran.name}
    values = [[t0 + i, str(5e9 + watts * 1000.0 * i)] for i in range(0, 101)]

    async def query(_request: web.Request) -> web.Response:
        result = [{"metric": labels, "values": values}]
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})

    runner, port = await serve_query(query)
    written = capture_status_writes(monkeypatch)
    cfg = OperatorSettings(prometheus_url=f"http://127.0.0.1:{port}")
    state = OperatorState(cfg)
    measure_pods = {("job", "ns", "job"): [ran, evicted, helper], ("node", "n1"): [ran, evicted]}
    measure_jobs = {("ns", "job"): [JobRun("ns", "job", True, t0 + 71, uid="j-1", owner_uid="a-1")]}
    cand = Candidate("ns", "a", "a-1", "job", "h100-sxm", 20000.0)
    indices = Indices(
        aijobs={},
        nodes={},
        pods={"p-ran": [_pod("p-ran", 1)], "p-evicted": [_pod("p-evicted", 1)]},  # gpu_pods: GPU pods only
        jobs={},
        deleted=state.deleted,
        more={"pods": [measure_pods], "jobs": [measure_jobs], "aijobs": [{"a-1": [cand]}]},
    )
    listed = {"/api/v1/pods": {"p-ran"}, "/apis/batch/v1/jobs": {"j-1"}}
    relister = Relister(cfg, Metrics(), indices, list_uids=lambda path: listed.get(path, {"a-1"}))
    assert await relister.relist() == {"p-evicted", "p-helper"}
    measurer = Measurer(cfg, {"state": state})
    try:
        await measurer.measure_one(cand, measure_pods, measure_jobs, {})
    finally:
        await measurer.stop()
        await runner.cleanup()
    assert written, "the measurement waited for a pod that is gone"
    measured = written[0]["measured"]
    assert measured["energyJoules"] == pytest.approx(watts * 60.0, rel=0.02), measured
    assert measured["gpus"] == 1
