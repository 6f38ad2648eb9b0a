"""operator.namespaces set: namespaced RBAC (a Role + RoleBinding per namespace), a read-only ClusterRole for
cluster-scoped resources; and the ServiceMonitor's selector labels (kube-prometheus-stack's `release`)."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_support import leader_election_role, one, rule_triples, watched_namespace_roles
from energaizer_operator.rbac import REQUIRED_RULES

CLUSTER_SCOPED = {"nodes", "namespaces", "customresourcedefinitions"}


def test_namespaced_mode_grants_namespaced_resources_by_role_only(render) -> None:
    objects = render({"operator": {"namespaces": ["team-a", "team-b"]}}, name="prod", namespace="ops")
    cluster = rule_triples(one(objects, "ClusterRole")["rules"])
    # and a list of the pods of every namespace (the GPUs other namespaces' pods hold: other_pods.py)
    assert {r for _, r, _ in cluster} == CLUSTER_SCOPED | {"pods"}
    assert {v for _, r, v in cluster if r == "pods"} == {"list"}
    assert all(v in ("get", "list", "watch") for _, _, v in cluster), "the ClusterRole is read-only"
    roles, bindings = watched_namespace_roles(objects), watched_namespace_roles(objects, "RoleBinding")
    leader = leader_election_role(objects)
    assert leader["metadata"]["namespace"] == "ops"  # the Lease lives in the operator's own namespace
    cluster_and_leader = cluster | rule_triples(leader["rules"])
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    required = rule_triples(list(REQUIRED_RULES))
    for role in roles:
        granted = rule_triples(role["rules"])
        assert {r for _, r, _ in granted} & CLUSTER_SCOPED == set()
        # with the ClusterRole's reads, each namespace gets exactly what the operator needs
        assert granted | cluster_and_leader == required
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "prod-energaizer",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "prod-energaizer", "namespace": "ops"}
        ]
    # the operator watches exactly those namespaces
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    text = " ".join(container.get("args", []) + [str(e) for e in container.get("env", [])])
    assert "team-a" in text and "team-b" in text


def test_no_cluster_wide_pod_list_when_other_namespaces_pods_are_not_listed(render) -> None:
    """``operator.otherPodsIntervalSeconds: 0``: the operator never lists other namespaces' pods, and the
    ClusterRole does not grant it; any other value is passed to the operator."""
    values = {"operator": {"namespaces": ["team-a"], "otherPodsIntervalSeconds": 0}}
    objects = render(values)
    assert {r for _, r, _ in rule_triples(one(objects, "ClusterRole")["rules"])} == CLUSTER_SCOPED
    env = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ENERGAIZER_OTHER_PODS_INTERVAL_SECONDS", "value": "0"} in env
    values["operator"]["otherPodsIntervalSeconds"] = 60
    env = one(render(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ENERGAIZER_OTHER_PODS_INTERVAL_SECONDS", "value": "60"} in env


def test_all_namespaces_mode_has_no_roles(render) -> None:
    objects = render()
    assert watched_namespace_roles(objects) == [] and watched_namespace_roles(objects, "RoleBinding") == []
    granted = rule_triples(one(objects, "ClusterRole")["rules"]) | rule_triples(
        leader_election_role(objects)["rules"]
    )
    assert granted == rule_triples(list(REQUIRED_RULES))


@pytest.mark.parametrize(
    ("values", "labels"),
    [
        ({}, {}),
        ({"prometheusRelease": "kube-prometheus-stack"}, {"release": "kube-prometheus-stack"}),
        (
            {"labels": {"team": "ml"}, "prometheusRelease": "monitoring"},
            {"release": "monitoring", "team": "ml"},
        ),
    ],
)
def test_servicemonitor_selector_labels(render, values: dict[str, Any], labels: dict[str, str]) -> None:
    monitor = one(render({"serviceMonitor": {"enabled": True, **values}}), "ServiceMonitor")
    got = monitor["metadata"]["labels"]
    assert {k: v for k, v in got.items() if not k.startswith(("app.kubernetes.io/", "helm.sh/"))} == labels


def test_prometheus_release_is_validated_by_the_schema(render) -> None:
    with pytest.raises(Exception, match=r"prometheusRelease|pattern|schema"):
        render({"serviceMonitor": {"enabled": True, "prometheusRelease": "not a name!"}})


def test_servicemonitor_timeout_never_exceeds_the_interval(render) -> None:
    """The Prometheus Operator skips a ServiceMonitor whose scrapeTimeout exceeds its interval: refused at
    render, naming both values, instead of a monitor that silently scrapes nothing."""
    monitor = one(
        render({"serviceMonitor": {"enabled": True, "interval": "1m", "scrapeTimeout": "60s"}}),
        "ServiceMonitor",
    )
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "60s"
    with pytest.raises(
        Exception, match=r"scrapeTimeout \(10s\) must not exceed serviceMonitor.interval \(5s\)"
    ):
        render({"serviceMonitor": {"enabled": True, "interval": "5s"}})  # the default scrapeTimeout: 10s
