"""The Helm chart, rendered and linted by the real Helm v4 library (helm-python-sdk)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    CHART,
    CRD_PATH,
    DASHBOARD_JSON,
    KUBE_VERSIONS,
    by_kind,
    leader_election_role,
    one,
    rule_triples,
)
from energaizer_operator.rbac import REQUIRED_RULES
from energaizer_operator.settings import OperatorSettings

DEFAULT_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Deployment",
    "PodDisruptionBudget",
    "Service",
}
ALL_ON: dict[str, Any] = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "dashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "AI"}},
    "operator": {"namespaces": ["ml", "research"], "defaultMode": "annotate", "defaultObjective": "time"},
    "gpu": {"productMap": {"NVIDIA-H100-80GB-HBM3": "h100-sxm", "Tesla-T4": "t4"}},
    "calibrationProfile": {"configMapName": "energaizer-profile", "key": "site.yaml"},
    "imagePullSecrets": [{"name": "regcred"}],
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
}
VALUE_SETS = {"defaults": {}, "all-options": ALL_ON, "no-rbac": {"rbac": {"create": False}}}


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_lint_is_clean() -> None:
    report = helm.lint(CHART, strict=True, kube_version="v1.33.0")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_lint_accepts_supported_values(values: dict[str, Any]) -> None:
    assert helm.lint(CHART, values, strict=True, kube_version="v1.33.0")["errors"] == []


def test_default_render_has_the_operator_objects(render) -> None:
    objects = render()
    assert {o["kind"] for o in objects} == DEFAULT_KINDS
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "energaizer") in names and ("Service", "energaizer-metrics") in names
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "energaizer-system"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_builtin_object_is_valid_kubernetes(render, values: dict[str, Any], kube_version: str) -> None:
    objects = render(values)
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # Prometheus Operator CRD: no schema offline; structure checked below
        kubernetes_validate.validate(obj, kube_version, strict=True)
        checked += 1
    assert checked >= 4  # ConfigMap, Deployment, Service, ServiceAccount at least


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_crd_is_valid_kubernetes(crd: dict[str, Any], kube_version: str) -> None:
    kubernetes_validate.validate(crd, kube_version, strict=True)
    assert crd["spec"]["group"] == "energaizer.io"
    assert crd["spec"]["names"] | {"kind": "AIJob", "plural": "aijobs"} == crd["spec"]["names"]


def test_chart_crd_is_the_manifests_crd() -> None:
    """crds/ holds a symlink to manifests/crd/: Helm installs exactly the generated CRD."""
    link = CHART / "crds" / CRD_PATH.name
    assert link.is_symlink() and link.resolve() == CRD_PATH.resolve()
    with helm.Chart.load(CHART) as chart:
        crds = chart.crds
    assert [c["filename"] for c in crds] == [f"energaizer/crds/{CRD_PATH.name}"]
    assert yaml.safe_load(crds[0]["data"]) == yaml.safe_load(CRD_PATH.read_text())


def test_packaged_chart_carries_the_linked_files(tmp_path: Path) -> None:
    """`helm package` resolves the symlinks: the archive holds the CRD and dashboard contents."""
    archive = helm.package(CHART, destination=tmp_path)
    with helm.Chart.load(archive) as chart:
        crds = chart.crds
        files = {f["name"]: f["data"] for f in chart.files}
        rendered = chart.render({"dashboard": {"enabled": True}}, name="energaizer", namespace="ops")
    assert yaml.safe_load(crds[0]["data"]) == yaml.safe_load(CRD_PATH.read_text())
    assert json.loads(files["files/energaizer.json"]) == json.loads(DASHBOARD_JSON.read_text())
    dashboard = yaml.safe_load(rendered["energaizer/templates/dashboard-configmap.yaml"])
    assert json.loads(dashboard["data"]["energaizer.json"]) == json.loads(DASHBOARD_JSON.read_text())


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (k, *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_clusterrole_is_exactly_what_the_operator_needs(render) -> None:
    objects = render()
    role = one(objects, "ClusterRole")
    assert not [s for s in _strings(role) if "*" in s], "wildcard in the ClusterRole"
    assert all(
        set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"]
    )  # no resourceNames etc.
    # the Lease of the leader election is granted by a Role in the release's namespace, not cluster-wide
    granted = rule_triples(role["rules"]) | rule_triples(leader_election_role(objects)["rules"])
    required = rule_triples(list(REQUIRED_RULES))
    assert required - granted == set(), "operator calls not granted"
    assert granted - required == set(), "grants beyond energaizer_operator.rbac.REQUIRED_RULES"


def test_clusterrolebinding_binds_the_service_account(render) -> None:
    objects = render({"serviceAccount": {"name": "placer"}}, name="prod", namespace="ops")
    binding, role = one(objects, "ClusterRoleBinding"), one(objects, "ClusterRole")
    account = one(objects, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "prod-energaizer",
    }
    assert role["metadata"]["name"] == "prod-energaizer"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "placer", "namespace": "ops"}]
    assert account["metadata"] == account["metadata"] | {"name": "placer", "namespace": "ops"}
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "placer"


def test_deployment_is_locked_down(render) -> None:
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert one(render(), "PodDisruptionBudget")["spec"]["minAvailable"] == 1  # HA: one replica stays
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "HOME=/tmp must be writable under a read-only root"


def test_probes_and_ports(render) -> None:
    container = _container(render())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["args"] == ["--all-namespaces"]


def test_metrics_service_reaches_the_operator_pod(render) -> None:
    objects = render(ALL_ON)
    deployment, service = one(objects, "Deployment"), one(objects, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_optional_objects_are_off_by_default(render) -> None:
    kinds = [o["kind"] for o in render()]
    assert "ServiceMonitor" not in kinds
    assert [o["metadata"]["name"] for o in by_kind(render(), "ConfigMap")] == ["energaizer-product-map"]


def test_dashboard_configmap_for_the_grafana_sidecar(render) -> None:
    maps = {o["metadata"]["name"]: o for o in by_kind(render(ALL_ON), "ConfigMap")}
    dashboard = maps["energaizer-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "AI"}
    assert json.loads(dashboard["data"]["energaizer.json"]) == json.loads(DASHBOARD_JSON.read_text())


def _settings(objects: list[dict[str, Any]], tmp_path: Path) -> OperatorSettings:
    """The operator's own settings parser applied to the rendered env and mounted product map."""
    env = _env(_container(objects))
    product_map = one(
        [o for o in by_kind(objects, "ConfigMap") if "product-map" in o["metadata"]["name"]], "ConfigMap"
    )
    path = tmp_path / "product-map.yaml"
    path.write_text(product_map["data"]["product-map.yaml"])
    mount = next(m["mountPath"] for m in _container(objects)["volumeMounts"] if m["name"] == "product-map")
    assert env["ENERGAIZER_PRODUCT_MAP"] == f"@{mount}/product-map.yaml"
    env["ENERGAIZER_PRODUCT_MAP"] = f"@{path}"
    return OperatorSettings.from_env(env)


def test_default_env_is_accepted_by_the_operator(render, tmp_path: Path) -> None:
    settings = _settings(render(), tmp_path)
    assert settings == OperatorSettings()  # chart defaults == operator defaults


def test_values_reach_the_operator_settings(render, tmp_path: Path) -> None:
    objects = render(ALL_ON | {"gpu": ALL_ON["gpu"] | {"productLabel": "example.com/gpu-model"}})
    settings = _settings(objects, tmp_path)
    assert settings.namespaces == ["ml", "research"]
    assert settings.default_mode == "annotate" and settings.default_objective == "time"
    assert settings.product_map == {"NVIDIA-H100-80GB-HBM3": "h100-sxm", "Tesla-T4": "t4"}
    assert settings.gpu_product_label == "example.com/gpu-model"
    assert settings.profile == "/etc/energaizer/profile/site.yaml"
    container = _container(objects)
    assert container["args"] == ["--namespace", "ml", "--namespace", "research"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["profile"]["configMap"]["name"] == "energaizer-profile"


def test_relist_and_api_timeout_values_reach_the_operator_settings(render, tmp_path: Path) -> None:
    """First-class values for ENERGAIZER_RELIST_INTERVAL_SECONDS and ENERGAIZER_API_TIMEOUT_SECONDS (0 is a
    value: never relist), rendered only when set; the API timeout reaches the extender's node cache too."""
    values = {"operator": {"relistIntervalSeconds": 0, "apiTimeoutSeconds": 12.5}}
    settings = _settings(render(values), tmp_path)
    assert settings.relist_interval_seconds == 0 and settings.api_timeout_seconds == 12.5
    deployments = by_kind(render({**values, "extender": {"enabled": True}}), "Deployment")
    extender = next(d for d in deployments if d["metadata"]["name"].endswith("-extender"))
    assert (
        _env(extender["spec"]["template"]["spec"]["containers"][0])["ENERGAIZER_API_TIMEOUT_SECONDS"]
        == "12.5"
    )
    env = _env(_container(render()))
    assert "ENERGAIZER_RELIST_INTERVAL_SECONDS" not in env and "ENERGAIZER_API_TIMEOUT_SECONDS" not in env


def test_unset_optional_values_render_byte_identically() -> None:
    """Values whose default is null (the operator's own default) leave the rendered text as it is without
    them: upgrading the chart changes no object of a release that does not set them."""
    with helm.Chart.load(CHART) as chart:
        defaults = chart.render({}, name="e", namespace="ns", is_install=True)
        nulls = {"operator": {"relistIntervalSeconds": None, "apiTimeoutSeconds": None}}
        assert chart.render(nulls, name="e", namespace="ns", is_install=True) == defaults
    for path, text in defaults.items():
        assert "RELIST" not in text and "API_TIMEOUT" not in text, path


def test_product_map_change_rolls_the_deployment(render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        return one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/product-map"
        ]

    assert checksum({}) != checksum({"gpu": {"productMap": {"Tesla-T4": "t4"}}})


BAD_VALUES = {
    "mode": {"operator": {"defaultMode": "foo"}},
    "objective": {"operator": {"defaultObjective": "cheapest"}},
    "batch-window": {"operator": {"batchWindowSeconds": 0}},
    "namespace-name": {"operator": {"namespaces": ["Not_A_Namespace"]}},
    "port": {"metrics": {"port": 70000}},
    "product-map-type": {"gpu": {"productMap": {"Tesla-T4": 4}}},
    "label-key": {"gpu": {"productLabel": "has spaces"}},
    "writable-root": {"securityContext": {"readOnlyRootFilesystem": False}},
    "root-user": {"podSecurityContext": {"runAsNonRoot": False}},
    "typo": {"serviceMonitor": {"enabeld": True}},
    "unknown-top-level": {"replicaCount": 2},
    "pull-policy": {"image": {"pullPolicy": "Sometimes"}},
    "relist-negative": {"operator": {"relistIntervalSeconds": -1}},
    "relist-text": {"operator": {"relistIntervalSeconds": "5m"}},
    "api-timeout-zero": {"operator": {"apiTimeoutSeconds": 0}},
    "api-timeout-above-600": {"operator": {"apiTimeoutSeconds": 601}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(values))
    assert helm.lint(CHART, values)["errors"], "helm lint must report the schema violation"


def test_schema_accepts_the_defaults() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)
        assert chart.values["operator"]["defaultMode"] == "steer"


def test_without_leader_election_one_operator_runs_at_a_time(render) -> None:
    """leaderElection off: every operator writes, so two must never run, not even during a rollout."""
    deployment = one(render({"replicas": 1, "leaderElection": {"enabled": False}}), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(Exception, match=r"replicas > 1 needs leaderElection"):
        render({"leaderElection": {"enabled": False}})  # the default 2 replicas


@pytest.mark.parametrize(
    ("name", "values"),
    [("r" * 53, {}), ("energaizer", {"fullnameOverride": "f" * 63})],
    ids=["release-name-53", "fullname-override-63"],
)
def test_long_names_stay_valid_and_distinct(render, name: str, values: dict[str, Any]) -> None:
    """Helm allows 53-character release names and the schema 63-character fullnameOverrides: the metrics
    Service stays a DNS label, and the extender's and scheduler's objects never take the operator's names."""
    all_on = {"scheduler": {"enabled": True}, "serviceMonitor": {"enabled": True}}
    objects = render(values | all_on, name=name)
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "two objects with one name"
    for obj in objects:
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(obj, KUBE_VERSIONS[-1], strict=True)
    services = {
        s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in by_kind(objects, "Service")
    }
    assert services["operator"]["metadata"]["name"].endswith("-metrics")
    assert all(len(s["metadata"]["name"]) <= 63 for s in services.values()), "a Service name is a DNS label"
    (scheduler_config,) = [
        o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-config")
    ]
    extender = yaml.safe_load(scheduler_config["data"]["config.yaml"])["extenders"][0]
    assert extender["urlPrefix"].startswith(
        f"http://{services['extender']['metadata']['name']}.energaizer-system."
    )


def test_metrics_and_health_ports_must_differ(render) -> None:
    """The operator opens one listener per port: equal ports would stop it at start-up (address in use)."""
    container = _container(render({"metrics": {"port": 9090}, "health": {"port": 9091}}))
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090, "health": 9091}
    with pytest.raises(Exception, match=r"metrics.port and health.port must differ \(both 8081\)"):
        render({"metrics": {"port": 8081}})
