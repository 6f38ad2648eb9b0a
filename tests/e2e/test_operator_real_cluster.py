"""Opt-in: the operator against a real cluster (``KUBECONFIG`` set; the cluster needs GPU nodes
labelled by GPU Feature Discovery). Applies the CRD, runs ``energaizer operator`` for one namespace,
creates an annotate-mode AIJob (nothing is scheduled) and waits for its status. Skipped otherwise.

    KUBECONFIG=~/.kube/config ENERGAIZER_E2E_NAMESPACE=default .venv/bin/pytest tests/e2e -m e2e
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="set KUBECONFIG to run against a real cluster"
    ),
]

CRD = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "aijobs.energaizer.io.yaml"


def test_aijob_gets_estimated_and_placed_on_a_real_cluster(tmp_path):
    import kubernetes
    import yaml

    kubernetes.config.load_kube_config()
    api = kubernetes.client.ApiClient()
    ext = kubernetes.client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(CRD.read_text())
    try:
        ext.create_custom_resource_definition(crd)
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    namespace = os.environ.get("ENERGAIZER_E2E_NAMESPACE", "default")
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    # No leader election: an operator installed in the cluster would hold the Lease and this one
    # would stand by.
    env = {
        **os.environ,
        "ENERGAIZER_METRICS_PORT": "0",
        "ENERGAIZER_HEALTH_PORT": "0",
        "ENERGAIZER_LEADER_ELECTION": "false",
    }
    with open(tmp_path / "operator.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "energaizer", "operator", "--namespace", namespace],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    objects = kubernetes.client.CustomObjectsApi(api)
    try:
        time.sleep(3)
        body = {
            "apiVersion": "energaizer.io/v1alpha1",
            "kind": "AIJob",
            "metadata": {"name": name},
            "spec": {
                "workload": {"model": "llama-3.1-8b", "inference": {"requests": 1000}},
                "placement": {"mode": "annotate"},
            },
        }
        objects.create_namespaced_custom_object("energaizer.io", "v1alpha1", namespace, "aijobs", body)
        deadline = time.monotonic() + 120
        phase = None
        while time.monotonic() < deadline:
            obj = objects.get_namespaced_custom_object("energaizer.io", "v1alpha1", namespace, "aijobs", name)
            phase = (obj.get("status") or {}).get("phase")
            if phase in ("Placed", "Unschedulable"):
                break
            time.sleep(2)
        assert phase in ("Placed", "Unschedulable"), (tmp_path / "operator.log").read_text()[-4000:]
        assert obj["status"]["estimates"]
    finally:
        objects.delete_namespaced_custom_object("energaizer.io", "v1alpha1", namespace, "aijobs", name)
        proc.terminate()
        proc.wait(timeout=30)
