"""Fixtures: kmock's stateful Kubernetes API with GPU nodes, and the real operator as a subprocess.

Every test's mock is ``kmock_support.RealisticEmulator`` (or a subclass a test names with
``@pytest.mark.kmock(cls=...)``): strict where a real API server is (CRD schema validation and pruning,
the status subresource, built-in object schemas). A test fails when the operator wrote a status field
the AIJob CRD lacks (a real API server would have dropped it silently).

The suite runs with ``--import-mode=importlib``; this directory goes on ``sys.path`` so that the test
modules can import the helpers in ``operator_testkit`` and ``kmock_support``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kmock._internal import parsing as _kp

sys.path.insert(0, str(Path(__file__).parent))

from kmock_support import RealisticEmulator, declare_resources, parse_namespaces
from operator_testkit import PRODUCTS, Cluster, OperatorProcess, node


@pytest.fixture
def kmock_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """kmock's own fixture, with ``RealisticEmulator`` as the default class (the markers still apply)."""
    options: dict[str, Any] = {"cls": RealisticEmulator, "strict": False}
    for marker in reversed(list(request.node.iter_markers("kmock"))):  # farthest to closest
        options.update(marker.kwargs)
    assert issubclass(options["cls"], RealisticEmulator), (
        "the operator tests need RealisticEmulator's strictness"
    )
    return options


@pytest.fixture
async def cluster(kmock: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    monkeypatch.setattr(_kp, "parse_path", parse_namespaces)
    declare_resources(kmock)
    c = Cluster(kmock)
    await c.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    )
    yield c
    lost = sorted({p for p in getattr(kmock, "pruned", []) if p.startswith("status")})
    assert not lost, f"status fields a real API server would drop (not in the AIJob CRD): {lost}"


@pytest.fixture
async def operator_factory(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[OperatorProcess] = []

    async def make(**env: str) -> OperatorProcess:
        op = OperatorProcess(cluster, tmp_path, env)
        started.append(op)
        await op.start()
        return op

    yield make
    for op in started:
        if op.proc is not None and op.proc.returncode is None:
            await op.stop()


@pytest.fixture
async def gpu_cluster(cluster: Cluster) -> Cluster:
    """Three GPU types, 8 GPUs each, plus a node with an unknown product and a NotReady node."""
    await cluster.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    await cluster.add_node(node("a100-0", PRODUCTS["a100-sxm4-80gb"], 8))
    await cluster.add_node(node("l4-0", PRODUCTS["l4"], 8))
    await cluster.add_node(node("mystery-0", "ACME-X1000", 8))
    await cluster.add_node(node("l4-down", PRODUCTS["l4"], 8, ready=False))
    return cluster
