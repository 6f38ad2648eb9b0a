"""Shared constants and helpers of the deployment tests.

Tests import from here, never from ``conftest``: with several test folders collected together,
``conftest`` is whichever folder's conftest pytest imported last.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "energaizer"
MANIFESTS = ROOT / "manifests"
CRD_PATH = MANIFESTS / "crd" / "aijobs.energaizer.io.yaml"
DASHBOARD_JSON = ROOT / "dashboards" / "energaizer.json"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a recent one.
KUBE_VERSIONS = ("1.25.0", "1.33.0")


def load_script(path: Path) -> ModuleType:
    """Import a repository script (manifests/generate.py, dashboards/generate.py) as a module."""
    name = f"_energaizer_deploy_{path.parent.name}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def leader_election_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The Role for the operator's leader-election Lease, in the release's own namespace."""
    found = [o for o in by_kind(objects, "Role") if o["metadata"]["name"].endswith("-leader-election")]
    assert len(found) == 1, f"expected one leader-election Role, got {len(found)}"
    return found[0]


def watched_namespace_roles(objects: list[dict[str, Any]], kind: str = "Role") -> list[dict[str, Any]]:
    """Roles (or RoleBindings) granted in the watched namespaces: all but the leader-election ones."""
    return [o for o in by_kind(objects, kind) if not o["metadata"]["name"].endswith("-leader-election")]


def rule_triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """RBAC rules as (apiGroup, resource, verb) triples."""
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
