"""Plain manifests (kubectl apply -k / -f) and sample AIJobs."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from crd_jsonschema import crd_validator, errors
from deploy_support import CRD_PATH, KUBE_VERSIONS, MANIFESTS

SAMPLES = sorted(p for p in (MANIFESTS / "samples").glob("*.yaml") if p.name != "kustomization.yaml")
INSTALL = sorted((MANIFESTS / "install").glob("*.yaml"))
MONITORING = sorted((MANIFESTS / "monitoring").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _identity(obj: dict[str, Any]) -> tuple[str, str, str, str | None]:
    return obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")


def test_committed_manifests_are_the_generator_output(manifest_generator) -> None:
    assert manifest_generator.stale(manifest_generator.generate()) == [], "run python manifests/generate.py"


def test_manifests_hold_the_chart_objects(render) -> None:
    """One truth: the same kinds, names, namespaces, RBAC rules and pod spec as `helm template` defaults."""
    chart = {_identity(o): o for o in render()}
    plain = {_identity(o): o for o in map(_load, INSTALL)}
    assert set(plain) - set(chart) == {("v1", "Namespace", "energaizer-system", None)}
    assert set(chart) <= set(plain)
    for key, obj in chart.items():
        ours = plain[key]
        for field in ("rules", "roleRef", "subjects", "data"):
            assert ours.get(field) == obj.get(field), (key, field)
        if obj["kind"] in ("Deployment", "Service"):
            assert ours["spec"] == obj["spec"], key
        assert ours["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl"
        assert "helm.sh/chart" not in ours["metadata"]["labels"]


def test_kustomization_lists_the_crd_and_every_install_file() -> None:
    kustomization = _load(MANIFESTS / "kustomization.yaml")
    resources = kustomization["resources"]
    assert resources[0] == "crd/aijobs.energaizer.io.yaml"
    assert resources[1:] == [f"install/{p.name}" for p in INSTALL]
    assert all((MANIFESTS / r).is_file() for r in resources)
    assert _load(INSTALL[0])["kind"] == "Namespace", "kubectl apply -f applies files in name order"
    monitoring = _load(MANIFESTS / "monitoring" / "kustomization.yaml")["resources"]
    assert sorted(monitoring) == sorted(p.name for p in MONITORING if p.name != "kustomization.yaml")
    kinds = {_load(MANIFESTS / "monitoring" / r)["kind"] for r in monitoring}
    assert kinds == {"ServiceMonitor", "ConfigMap"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_the_install() -> None:
    """`kubectl kustomize` (offline) builds what `kubectl apply -k manifests/` would send."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = [d for d in yaml.safe_load_all(out) if d]
    expected = [_load(CRD_PATH), *map(_load, INSTALL)]
    assert sorted(map(_identity, built), key=str) == sorted(map(_identity, expected), key=str)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("path", INSTALL + [p for p in MONITORING if p.name != "kustomization.yaml"], ids=str)
def test_plain_manifest_is_valid_kubernetes(path: Path, kube_version: str) -> None:
    obj = _load(path)
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        assert obj["kind"] == "ServiceMonitor" and obj["spec"]["endpoints"][0]["port"] == "metrics"
        return
    kubernetes_validate.validate(obj, kube_version, strict=True)


# --- sample AIJobs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aijob_validator(crd: dict[str, Any]):
    return crd_validator(crd, "v1alpha1")


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_matches_the_crd_schema(path: Path, aijob_validator) -> None:
    sample = _load(path)
    assert (sample["apiVersion"], sample["kind"]) == ("energaizer.io/v1alpha1", "AIJob")
    assert errors(aijob_validator, sample) == []


@pytest.mark.parametrize(
    "path", [p for p in SAMPLES if _load(p)["spec"].get("template")], ids=lambda p: p.name
)
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_sample_pod_template_is_a_valid_job_template(path: Path, kube_version: str) -> None:
    """The operator copies spec.template into a batch/v1 Job: it must be a valid pod template."""
    sample = _load(path)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": sample["metadata"]["name"], "namespace": sample["metadata"]["namespace"]},
        "spec": {"template": sample["spec"]["template"]},
    }
    kubernetes_validate.validate(job, kube_version, strict=True)
    gpus = sample["spec"]["resources"]["gpusPerReplica"]
    limits = [
        c["resources"]["limits"]["nvidia.com/gpu"] for c in job["spec"]["template"]["spec"]["containers"]
    ]
    assert limits == [str(gpus)], "the container asks for the GPUs the AIJob was estimated with"


def test_samples_cover_the_documented_cases() -> None:
    specs = {p.name: _load(p)["spec"] for p in SAMPLES}
    assert any(
        s["workload"]["task"] == "inference" and s["workload"]["model"] == "llama-3.1-8b"
        for s in specs.values()
    )
    assert any(
        s["workload"]["task"] == "training" and s["workload"]["training"].get("tokens")
        for s in specs.values()
    )
    assert any(s["placement"].get("deadlineSeconds") for s in specs.values())
    annotate = [s for s in specs.values() if s["placement"]["mode"] == "annotate"]
    assert annotate and all(not s.get("template") for s in annotate), "annotate-only creates nothing"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_names_resolve_in_the_catalog(path: Path) -> None:
    from energaizer.catalog import get_gpu, get_model

    spec = _load(path)["spec"]
    get_model(spec["workload"]["model"])
    for gpu in spec["placement"].get("candidateGpuTypes", []):
        assert get_gpu(gpu).id == gpu


BROKEN = {
    "mode": (("spec", "placement", "mode"), "schedule"),
    "task": (("spec", "workload", "task"), "serving"),
    "requests": (("spec", "workload", "inference", "requests"), 0),
    "gpus": (("spec", "resources", "gpusPerReplica"), 0),
    "deadline": (("spec", "placement", "deadlineSeconds"), 0),
    "typo": (("spec", "placement", "objectiv"), "energy"),
    "precision": (("spec", "workload", "precision"), "fp64"),
}


@pytest.mark.parametrize("change", BROKEN.values(), ids=BROKEN.keys())
def test_the_schema_check_rejects_broken_samples(
    change: tuple[tuple[str, ...], Any], aijob_validator
) -> None:
    sample = copy.deepcopy(_load(MANIFESTS / "samples" / "deadline.yaml"))
    path, value = change
    node = sample
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert errors(aijob_validator, sample), f"{'.'.join(path)}={value!r} was accepted"
