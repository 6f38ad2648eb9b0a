"""The opt-in real-cluster test (test_operator_real_cluster.py) run against kmock's API mock, so that its
code runs in every CI run and cannot rot unseen: the CRD applied and waited for until Established, the
GPU-node precondition, the operator process, the AIJob placed with its estimates, the cleanup.

kmock serves no ``/version`` and sets no CRD conditions, which a real API server does: this test
answers the first and plays the apiextensions controller for the second (Established, once created).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from kmock._internal import parsing as _kp
from kmock_support import RealisticEmulator, declare_resources, parse_namespaces
from operator_testkit import PRODUCTS, Cluster, node, write_kubeconfig

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)

E2E = Path(__file__).with_name("test_operator_real_cluster.py")
VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _e2e_module() -> Any:
    spec = importlib.util.spec_from_file_location("_energaizer_e2e_real_cluster", E2E)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _establish_crds(kmock: Any) -> None:
    """What the apiextensions controller does: a created CRD becomes Established."""
    while True:
        for key, obj in list(kmock.objects.items()):
            if key[0].plural == "customresourcedefinitions" and not (obj.raw.get("status") or {}).get(
                "conditions"
            ):
                kmock.objects[key] = {
                    **obj.raw,
                    "status": {"conditions": [{"type": "Established", "status": "True"}]},
                }
        await asyncio.sleep(0.2)


async def test_the_real_cluster_test_runs_against_the_api_mock(
    kmock: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_kp, "parse_path", parse_namespaces)
    declare_resources(kmock)
    kmock["/version/"] << VERSION
    cluster = Cluster(kmock)
    await cluster.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    )
    await cluster.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("ENERGAIZER_E2E_NAMESPACE", raising=False)
    (tmp_path / "run").mkdir()
    controller = asyncio.create_task(_establish_crds(kmock))
    try:
        await asyncio.to_thread(
            _e2e_module().test_aijob_gets_estimated_and_placed_on_a_real_cluster, tmp_path / "run"
        )
    finally:
        controller.cancel()
    crds = [k for k in kmock.objects if k[0].plural == "customresourcedefinitions"]
    assert [k[2] for k in crds] == ["aijobs.energaizer.io"]
    left = [k for k, v in kmock.objects.items() if k[0].plural == "aijobs" and not v.deleted]
    assert left == [], "the test deletes its AIJob"
