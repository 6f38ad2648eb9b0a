"""Every Kubernetes API call in the operator's code is granted by the chart's ClusterRole.

This reads the code itself (``ast``), independently of ``REQUIRED_RULES``: the kubernetes client
calls (``create_namespaced_job`` ...) and the resources kopf handlers and indices watch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import energaizer_operator
import kubernetes.client
import pytest
from deploy_support import leader_election_role, one

# Every method of the official client's API classes (CoreV1Api, BatchV1Api, CustomObjectsApi, ...).
CLIENT_METHODS = {
    m
    for name in dir(kubernetes.client)
    if name.endswith("Api")
    for m in dir(getattr(kubernetes.client, name))
}
SOURCES = sorted(Path(energaizer_operator.__file__).parent.glob("*.py"))
CLIENT_CALL = re.compile(
    r"^(create|patch|read|list|delete|replace)_(namespaced_)?([a-z_]+?)(_status)?(_for_all_namespaces)?$"
)
VERBS = {
    "create": "create",
    "patch": "patch",
    "read": "get",
    "list": "list",
    "delete": "delete",
    "replace": "update",
}
# kubernetes client object name -> (API group, resource)
CLIENT_RESOURCES = {
    "job": ("batch", "jobs"),
    "node": ("", "nodes"),
    "pod": ("", "pods"),
    "namespace": ("", "namespaces"),
    "event": ("", "events"),
    "lease": ("coordination.k8s.io", "leases"),
    "custom_object": (energaizer_operator.GROUP, energaizer_operator.PLURAL),
}
# kopf handlers on a resource: list+watch it; change handlers also patch it (progress annotations).
WATCHING = {"index", "event", "create", "update", "delete", "resume", "field", "daemon", "timer"}
PATCHING = WATCHING - {"index", "event"}
# What kopf itself calls, whatever the handlers: Events it posts about handled objects, CRD
# discovery, and the namespace watch of namespaced mode (`--namespace`).
KOPF_OWN = {
    ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and hasattr(energaizer_operator, node.id):
        return getattr(energaizer_operator, node.id)
    raise AssertionError(
        f"cannot resolve {ast.unparse(node)}: use a literal or an energaizer_operator constant"
    )


def _kopf_kind(func: ast.expr) -> str | None:
    """'index' for kopf.index(...), 'create' for kopf.on.create(...), else None."""
    text = ast.unparse(func)
    match = re.fullmatch(r"kopf\.(?:on\.)?(\w+)", text)
    return match.group(1) if match else None


def calls_in_code() -> set[tuple[str, str, str]]:
    needed: set[tuple[str, str, str]] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            kind = _kopf_kind(node.func)
            if kind in WATCHING and len(node.args) >= 3:
                group, _version, plural = (_value(a) for a in node.args[:3])
                needed |= {(group, plural, "list"), (group, plural, "watch")}
                if kind in PATCHING:
                    needed.add((group, plural, "patch"))
                continue
            attr = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if attr in CLIENT_METHODS and (m := CLIENT_CALL.match(attr)):
                verb, _, name, status, _ = m.groups()
                assert name in CLIENT_RESOURCES, f"{path.name}: unmapped client call {node.func.attr}"
                group, resource = CLIENT_RESOURCES[name]
                needed.add((group, resource + ("/status" if status else ""), VERBS[verb]))
    return needed


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_the_scan_sees_the_operator_calls() -> None:
    needed = calls_in_code()
    assert ("batch", "jobs", "create") in needed and ("batch", "jobs", "get") in needed
    assert ("energaizer.io", "aijobs/status", "patch") in needed
    assert {("", "nodes", "watch"), ("", "pods", "watch"), ("energaizer.io", "aijobs", "patch")} <= needed


def test_every_call_in_the_operator_code_is_granted(render) -> None:
    objects = render()
    granted = _granted(one(objects, "ClusterRole")) | _granted(leader_election_role(objects))
    missing = (calls_in_code() | KOPF_OWN) - granted
    assert missing == set(), f"the ClusterRole lacks {sorted(missing)}"


@pytest.mark.parametrize(
    "source",
    [
        "api.delete_namespaced_job(name, namespace)",
        "@kopf.on.create('', 'v1', 'configmaps')\ndef f(**_): ...",
    ],
)
def test_an_ungranted_call_would_be_reported(source: str, render, monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "extra.py").write_text(source + "\n")
    monkeypatch.setattr(f"{__name__}.SOURCES", [*SOURCES, tmp_path / "extra.py"])
    granted = _granted(one(render(), "ClusterRole"))
    assert calls_in_code() - granted
