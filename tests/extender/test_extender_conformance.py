"""Black box: the real extender's answers against kube-scheduler's Go types (k8s.io/kube-scheduler/extender/v1,
no json tags, so the field names are the Go names) and its HTTP extender client (pkg/scheduler/extender.go):
field names and types, the answer form per nodeCacheCapable, pods energaizer does not manage passed through,
5,000 nodes in one call, concurrent calls."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from extender_support import PRODUCTS, args_with_names, args_with_nodes, node, pod, request, workload

# ExtenderFilterResult and HostPriority as encoding/json writes and reads them
FILTER_FIELDS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
HOST_PRIORITY_FIELDS = {"Host", "Score"}
MAX_EXTENDER_PRIORITY = 10
NODES = [
    node("h100-a", PRODUCTS["h100-sxm"]),
    node("l4-a", PRODUCTS["l4"]),
    node("a100-a", PRODUCTS["a100-sxm4-80gb"]),
    node("unknown-product", "ACME-X1000"),
    node("mig", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"),
    node("no-gpu-label", None),
]
NAMES = [n["metadata"]["name"] for n in NODES]
BIG = workload("qwen3-32b", requests=500, batch_size=8)  # does not fit one L4


def check_filter(answer: Any, names: list[str], by_names: bool) -> list[str]:
    """The answer is an ExtenderFilterResult in the form kube-scheduler reads for ``by_names``
    (nodeCacheCapable); returns the names that passed."""
    assert isinstance(answer, dict) and set(answer) == FILTER_FIELDS, answer
    assert isinstance(answer["Error"], str)
    for field in ("FailedNodes", "FailedAndUnresolvableNodes"):
        failed = answer[field]
        assert isinstance(failed, dict) and all(isinstance(v, str) and v for v in failed.values())
        assert set(failed) <= set(names)
    if by_names:  # read only when nodeCacheCapable; every name must be one it was sent
        assert answer["Nodes"] is None and isinstance(answer["NodeNames"], list)
        passed = answer["NodeNames"]
    else:  # the Node objects themselves, as sent
        assert answer["NodeNames"] is None and isinstance(answer["Nodes"]["items"], list)
        sent = {n["metadata"]["name"]: n for n in NODES}
        for item in answer["Nodes"]["items"]:
            assert item == sent[item["metadata"]["name"]]
        passed = [n["metadata"]["name"] for n in answer["Nodes"]["items"]]
    assert len(set(passed)) == len(passed) and set(passed) <= set(names)
    assert not set(passed) & set(answer["FailedNodes"])
    return passed


def check_priorities(answer: Any, names: list[str]) -> dict[str, int]:
    assert isinstance(answer, list) and [h["Host"] for h in answer] == names
    for h in answer:
        assert set(h) == HOST_PRIORITY_FIELDS
        assert type(h["Score"]) is int and 0 <= h["Score"] <= MAX_EXTENDER_PRIORITY  # Go: int64
    return {h["Host"]: h["Score"] for h in answer}


@pytest.mark.parametrize("by_names", [False, True], ids=["Nodes", "NodeNames"])
def test_answers_have_the_go_field_names_and_types(extender, by_names: bool) -> None:
    for p in (pod("big", BIG), pod("plain", None), pod("bad", "{not json")):
        body = args_with_names(p, NAMES) if by_names else args_with_nodes(p, NODES)
        status, answer = request(extender.port, "/scheduler/filter", body)
        assert status == 200
        check_filter(answer, NAMES, by_names)
    status, answer = request(extender.port, "/scheduler/prioritize", args_with_nodes(pod("big", BIG), NODES))
    assert status == 200
    got = check_priorities(answer, NAMES)
    assert max(got.values()) == MAX_EXTENDER_PRIORITY


@pytest.mark.parametrize(
    "body",
    [
        {"Pod": pod("p", BIG), "Nodes": {"metadata": {}, "items": None}, "NodeNames": None},
        {"Pod": pod("p", BIG), "Nodes": None, "NodeNames": []},
        {
            "Pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}},
            "Nodes": None,
            "NodeNames": [],
        },
    ],
    ids=["empty NodeList", "empty NodeNames", "bare pod"],
)
def test_empty_node_lists_are_answered_empty(extender, body: dict[str, Any]) -> None:
    """As encoding/json writes them: nil pointers as null, an empty NodeList's items as null, empty
    ObjectMeta fields (annotations) left out."""
    by_names = body["NodeNames"] is not None
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 200 and check_filter(answer, [], by_names) == [] and answer["Error"] == ""
    status, answer = request(extender.port, "/scheduler/prioritize", body)
    assert status == 200 and answer == []


def aijob_pod() -> dict[str, Any]:
    """A pod of an AIJob's Job (label and gpu-type annotation, no workload annotation) whose AIJob is gone."""
    p = pod("trainer-0", None, gpus=8)
    p["metadata"]["labels"] = {"energaizer.io/aijob": "deleted-long-ago"}
    p["metadata"]["annotations"]["energaizer.io/gpu-type"] = "h100-sxm"
    return p


def zero_gpu_pod() -> dict[str, Any]:
    p = pod("zero", BIG)
    p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "0"
    return p


UNMANAGED = {
    "no annotation": pod("plain", None),
    "no annotations at all": {**pod("bare", None), "metadata": {"name": "bare", "namespace": "x"}},
    "annotation, no GPUs": pod("cpu", BIG, gpus=0),
    "annotation, GPU limit 0": zero_gpu_pod(),
    "AIJob gone": aijob_pod(),
}


@pytest.mark.parametrize("p", UNMANAGED.values(), ids=UNMANAGED.keys())
@pytest.mark.parametrize("by_names", [False, True], ids=["Nodes", "NodeNames"])
def test_pods_energaizer_does_not_manage_pass_untouched(extender, p: dict[str, Any], by_names: bool) -> None:
    body = args_with_names(p, NAMES) if by_names else args_with_nodes(p, NODES)
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 200 and answer["Error"] == ""
    assert check_filter(answer, NAMES, by_names) == NAMES and answer["FailedNodes"] == {}
    assert answer["FailedAndUnresolvableNodes"] == {}
    status, answer = request(extender.port, "/scheduler/prioritize", body)
    assert status == 200 and set(check_priorities(answer, NAMES).values()) == {0}


def test_gpus_in_limits_only_or_requests_too_are_the_same_pod(extender) -> None:
    limits_only = pod("a", BIG, gpus=2)
    both = pod("b", BIG, gpus=2)
    both["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "2"
    answers = [
        request(extender.port, f"/scheduler/{verb}", args_with_nodes(p, NODES))
        for p in (limits_only, both)
        for verb in ("filter", "prioritize")
    ]
    assert all(status == 200 for status, _ in answers)
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert "l4-a" in answers[0][1]["FailedNodes"]


def test_nodes_without_a_known_gpu_type_are_never_filtered_and_score_0(extender) -> None:
    status, answer = request(extender.port, "/scheduler/filter", args_with_nodes(pod("big", BIG), NODES))
    passed = check_filter(answer, NAMES, by_names=False)
    assert status == 200 and {"unknown-product", "mig", "no-gpu-label"} <= set(passed)
    assert "l4-a" not in passed
    status, answer = request(extender.port, "/scheduler/prioritize", args_with_nodes(pod("big", BIG), NODES))
    assert status == 200
    got = check_priorities(answer, NAMES)
    assert got["unknown-product"] == got["mig"] == got["no-gpu-label"] == 0 < got["h100-a"]


def test_5000_nodes_in_one_call(extender) -> None:
    products = [PRODUCTS["h100-sxm"], PRODUCTS["l4"], PRODUCTS["a100-sxm4-80gb"], None]
    nodes = [node(f"gpu-{i:04d}", products[i % 4]) for i in range(5000)]
    names = [n["metadata"]["name"] for n in nodes]
    body = args_with_nodes(pod("big", BIG), nodes)
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 200 and answer["Error"] == ""
    kept = [n["metadata"]["name"] for n in answer["Nodes"]["items"]]
    assert kept == [n for i, n in enumerate(names) if i % 4 != 1] and len(answer["FailedNodes"]) == 1250
    status, answer = request(extender.port, "/scheduler/prioritize", body)
    assert status == 200 and [h["Host"] for h in answer] == names
    assert {h["Score"] for h in answer[3::4]} == {0} and {h["Score"] for h in answer[::4]} <= {9, 10}
    status, answer = request(extender.port, "/scheduler/filter", args_with_names(pod("big", BIG), names))
    assert status == 200 and answer["NodeNames"] == names  # no node cache here: every name passes


def test_concurrent_calls_get_the_answers_of_serial_ones(extender) -> None:
    """Several profiles and pods at once: each answer is what the same call alone gets."""
    pods = [pod(f"p{k}", workload(requests=100 + k % 5)) for k in range(5)] + [pod("plain", None)]
    calls = [(verb, json.dumps(args_with_nodes(p, NODES))) for p in pods for verb in ("filter", "prioritize")]
    serial = [request(extender.port, f"/scheduler/{v}", b.encode()) for v, b in calls]
    with ThreadPoolExecutor(12) as pool:
        rounds = list(
            pool.map(lambda c: request(extender.port, f"/scheduler/{c[0]}", c[1].encode()), calls * 8)
        )
    assert rounds == serial * 8
    assert extender.alive()
