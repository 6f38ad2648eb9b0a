"""other_pods.py: the GPUs held by the pods of namespaces the operator does not watch."""

from __future__ import annotations

import logging

import pytest
from energaizer_operator import kube
from energaizer_operator.inventory import PodGPUs, compute_capacity, node_gpus
from energaizer_operator.loops import OtherPods
from energaizer_operator.other_pods import BOUND_UNFINISHED, PODS_PATH, OtherPodsLister, other_namespaces_pods
from energaizer_operator.settings import OperatorSettings
from operator_testkit import PRODUCTS, node


def pod(namespace: str, name: str, node_name: str | None, gpus: int, phase: str = "Running") -> dict:
    spec: dict = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"{namespace}/{name}"},
        "spec": spec,
        "status": {"phase": phase},
    }


ITEMS = [
    pod("team-a", "watched", "l4-0", 2),  # in the pod index already
    pod("team-b", "other", "l4-0", 3),
    pod("team-b", "done", "l4-0", 4, phase="Succeeded"),
    pod("team-b", "unbound", None, 4, phase="Pending"),
    pod("team-c", "cpu-only", "l4-0", 0),
    pod("team-c", "starting", "l4-0", 1, phase="Pending"),  # bound, not yet running: holds its GPU
]


def test_only_bound_unfinished_gpu_pods_outside_the_watched_namespaces_are_kept():
    got = other_namespaces_pods(ITEMS, {"team-a"}, "nvidia.com/gpu")
    assert got == (PodGPUs("l4-0", 3, uid="team-b/other"), PodGPUs("l4-0", 1, uid="team-c/starting"))


def test_their_gpus_are_not_free():
    nodes = [
        node_gpus(
            node("l4-0", PRODUCTS["l4"], 8),
            product_label="nvidia.com/gpu.product",
            gpu_resource="nvidia.com/gpu",
            mapping={},
        )
    ]
    others = other_namespaces_pods(ITEMS, {"team-a"}, "nvidia.com/gpu")
    assert compute_capacity(nodes, [PodGPUs("l4-0", 2, uid="team-a/watched")], []).free["l4"] == 6
    assert compute_capacity(nodes, [PodGPUs("l4-0", 2, uid="team-a/watched"), *others], []).free["l4"] == 2


class FakeList:
    def __init__(self) -> None:
        self.answers: list = []
        self.calls: list[tuple[str, str]] = []

    def __call__(self, path: str, *, field_selector: str = ""):
        self.calls.append((path, field_selector))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return iter(answer)


def lister() -> tuple[OtherPodsLister, OtherPods, FakeList]:
    settings = OperatorSettings(namespaces=["team-a"])
    others, fake = OtherPods(), FakeList()
    return OtherPodsLister(settings, others, list_items=fake), others, fake


async def test_a_pass_replaces_the_snapshot_and_the_placer_waits_for_the_first():
    lst, others, fake = lister()
    assert not others.ready  # no placement on a view without them
    fake.answers = [ITEMS, ITEMS[:2]]
    await lst.refresh()
    assert others.ready and [p.uid for p in others.pods] == ["team-b/other", "team-c/starting"]
    assert fake.calls == [(PODS_PATH, BOUND_UNFINISHED)]
    await lst.refresh()
    assert [p.uid for p in others.pods] == ["team-b/other"]


async def test_a_failed_list_keeps_the_last_snapshot(caplog):
    lst, others, fake = lister()
    fake.answers = [ITEMS, kube.ApiException(status=500, reason="boom"), ConnectionResetError()]
    await lst.refresh()
    kept = others.pods
    with caplog.at_level(logging.WARNING, logger="energaizer_operator.other_pods"):
        await lst.refresh()
        await lst.refresh()
    assert others.pods == kept and others.ready
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "listing the pods of other namespaces failed (500)",
        "listing the pods of other namespaces failed (ConnectionResetError)",
    ]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_list_is_one_warning_naming_the_missing_rule(caplog, status):
    lst, others, fake = lister()
    fake.answers = [kube.ApiException(status=status, reason="Forbidden")] * 3 + [ITEMS]
    with caplog.at_level(logging.INFO, logger="energaizer_operator.other_pods"):
        for _ in range(3):
            await lst.refresh()
        assert others.ready and others.pods == ()  # they count as free, as without the list
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "list on pods cluster-wide" in warnings[0].getMessage()
        assert "team-a" in warnings[0].getMessage()
        await lst.refresh()
    assert len(others.pods) == 2
    assert caplog.records[-1].getMessage() == "listing the pods of every namespace works again"
