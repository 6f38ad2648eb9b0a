"""Opt-in: the operator against a real cluster (``ENERGAIZER_E2E=1`` and ``KUBECONFIG`` set). Applies the
CRD and waits until the API server serves it (``Established``), runs ``energaizer operator`` for one
namespace, creates an annotate-mode AIJob (no Job, no pod, no image pulled) and waits for its estimates
and placement. Skipped otherwise: ``KUBECONFIG`` alone is not consent (a developer's may well point at
production, and this test replaces the CRD and writes an AIJob there).

    ENERGAIZER_E2E=1 KUBECONFIG=~/.kube/config ENERGAIZER_E2E_NAMESPACE=default .venv/bin/pytest tests/e2e -m e2e

The cluster needs one Ready node of a catalog GPU type: the label ``nvidia.com/gpu.product`` (as
NVIDIA GPU Feature Discovery writes it) and allocatable ``nvidia.com/gpu``. On kind or k3d, fake one:

    kubectl label node NODE nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3
    kubectl patch node NODE --subresource=status --type=json \\
      -p '[{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "8"}]'

Run it where no energaizer operator already watches the namespace (it would write the same AIJob).
The credentials of ``KUBECONFIG`` are used, not the chart's RBAC (tests/deploy checks those rules).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

OPT_IN = "ENERGAIZER_E2E"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get(OPT_IN) != "1" or not os.environ.get("KUBECONFIG"),
        reason=f"set {OPT_IN}=1 and KUBECONFIG to run against a real cluster (it writes to it)",
    ),
]

CRD = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "aijobs.energaizer.io.yaml"
GROUP, VERSION, PLURAL = "energaizer.io", "v1alpha1", "aijobs"
CRD_ESTABLISHED_SECONDS = 60
PLACED_SECONDS = 180


def _apply_crd(ext: Any, crd: dict[str, Any]) -> None:
    """Create the CRD, or replace one left by an older version (its schema would prune new fields)."""
    import kubernetes

    name = crd["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(crd)
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        body = {**crd, "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version}}
        ext.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + CRD_ESTABLISHED_SECONDS
    conditions: list[Any] = []
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition(name).status  # none yet right after the create
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(1)
    pytest.fail(f"CRD {name} not Established after {CRD_ESTABLISHED_SECONDS} s: {conditions}")


def _gpu_nodes(core: Any) -> dict[str, str]:
    """Ready nodes of a catalog GPU type with allocatable GPUs: node name -> GPU type."""
    from energaizer_operator.inventory import parse_quantity, resolve_gpu_type
    from energaizer_operator.settings import OperatorSettings

    settings = OperatorSettings.from_env()
    found = {}
    for n in core.list_node().items:
        product = (n.metadata.labels or {}).get(settings.gpu_product_label)
        ready = any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
        gpus = parse_quantity((n.status.allocatable or {}).get(settings.gpu_resource))
        gpu_type = resolve_gpu_type(product, settings.product_map)[0] if product else None
        if ready and gpus > 0 and gpu_type:
            found[n.metadata.name] = gpu_type
    return found


def test_aijob_gets_estimated_and_placed_on_a_real_cluster(tmp_path: Path) -> None:
    import kubernetes
    import yaml

    # named: the client reads KUBECONFIG once, when first imported
    kubernetes.config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    api = kubernetes.client.ApiClient()
    try:
        kubernetes.client.VersionApi(api).get_code()
    except Exception as exc:  # any transport error: say which cluster could not be reached
        pytest.fail(f"cannot reach the cluster of KUBECONFIG={os.environ['KUBECONFIG']}: {exc}")
    core = kubernetes.client.CoreV1Api(api)
    namespace = os.environ.get("ENERGAIZER_E2E_NAMESPACE", "default")
    try:
        core.read_namespace(namespace)
    except kubernetes.client.exceptions.ApiException as exc:
        pytest.fail(f"namespace {namespace!r} (ENERGAIZER_E2E_NAMESPACE): {exc.status} {exc.reason}")
    gpu_nodes = _gpu_nodes(core)
    if not gpu_nodes:
        pytest.fail(
            "no Ready node of a catalog GPU type (label nvidia.com/gpu.product, allocatable "
            "nvidia.com/gpu): the AIJob would wait for one forever; see this module's docstring"
        )
    _apply_crd(kubernetes.client.ApiextensionsV1Api(api), yaml.safe_load(CRD.read_text()))

    name = f"e2e-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "ENERGAIZER_METRICS_PORT": "0",
        "ENERGAIZER_HEALTH_PORT": "0",
        # No leader election: an operator installed in the cluster would hold the Lease and this
        # one would stand by.
        "ENERGAIZER_LEADER_ELECTION": "false",
        # placed at once on the best free type (or Unschedulable), not after waiting for a busy one
        "ENERGAIZER_MAX_WAIT_SECONDS": "0",
    }
    log_path = tmp_path / "operator.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "energaizer", "operator", "--namespace", namespace],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    objects = kubernetes.client.CustomObjectsApi(api)
    created = False
    try:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "workload": {"model": "llama-3.1-8b", "inference": {"requests": 1000}},
                "placement": {"mode": "annotate"},
            },
        }
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        created = True
        deadline = time.monotonic() + PLACED_SECONDS
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (
                f"the operator exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}"
            )
            obj = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            status = obj.get("status") or {}
            if status.get("phase") in ("Placed", "Unschedulable"):
                break
            time.sleep(2)
        assert status.get("phase") in ("Placed", "Unschedulable"), (
            f"AIJob {namespace}/{name} after {PLACED_SECONDS} s: {status}\n{log_path.read_text()[-4000:]}"
        )
        assert status["estimates"], status
        estimated = {e["gpuType"] for e in status["estimates"]}
        assert set(gpu_nodes.values()) <= estimated, (gpu_nodes, estimated)
    finally:
        if created:
            try:
                objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            except kubernetes.client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
