"""The optional second scheduler (stock kube-scheduler + energaizer's extender), rendered by the real Helm
library and validated against the Kubernetes schemas; its KubeSchedulerConfiguration is checked against
the fields of kubescheduler.config.k8s.io/v1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from deploy_support import CHART, KUBE_VERSIONS, by_kind
from energaizer_operator.settings import OperatorSettings

ON = {"scheduler": {"enabled": True}}
CUSTOM = {
    "scheduler": {
        "enabled": True,
        "name": "green-scheduler",
        "httpTimeout": "300ms",
        "extenderWeight": 3,
        "filter": False,
        "image": {"tag": "v1.31.4"},
    },
    "extender": {"port": 9099, "replicas": 3},
    "gpu": {"productMap": {"Tesla-T4": "t4"}},
    "calibrationProfile": {"configMapName": "site-profile", "key": "p.yaml"},
}
# kubescheduler.config.k8s.io/v1 Extender and ExtenderManagedResource fields (k8s.io/kube-scheduler/config/v1).
EXTENDER_FIELDS = {
    "urlPrefix",
    "filterVerb",
    "preemptVerb",
    "prioritizeVerb",
    "weight",
    "bindVerb",
    "enableHTTPS",
    "tlsConfig",
    "httpTimeout",
    "nodeCacheCapable",
    "managedResources",
    "ignorable",
}
CONFIG_FIELDS = {
    "apiVersion",
    "kind",
    "parallelism",
    "leaderElection",
    "clientConnection",
    "percentageOfNodesToScore",
    "podInitialBackoffSeconds",
    "podMaxBackoffSeconds",
    "profiles",
    "extenders",
    "delayCacheUntilActive",
}


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def config(objects: list[dict[str, Any]], name: str = "energaizer-scheduler") -> dict[str, Any]:
    return yaml.safe_load(named(objects, "ConfigMap", f"{name}-config")["data"]["config.yaml"])


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", duration))


def test_off_by_default(render) -> None:
    names = {o["metadata"]["name"] for o in render()}
    assert not any("scheduler" in n or "extender" in n for n in names)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values", [ON, CUSTOM, {"extender": {"enabled": True}}], ids=["on", "custom", "extender"]
)
def test_every_object_is_valid_kubernetes(render, values: dict[str, Any], kube_version: str) -> None:
    for obj in render(values):
        kubernetes_validate.validate(obj, kube_version, strict=True)


@pytest.mark.parametrize("values", [ON, CUSTOM], ids=["on", "custom"])
def test_lint_is_clean(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version="v1.33.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_scheduler_configuration_calls_the_extender(render) -> None:
    objects = render(ON, name="prod", namespace="ops")
    cfg = config(objects, "prod-energaizer-scheduler")
    assert set(cfg) <= CONFIG_FIELDS
    assert (
        cfg["apiVersion"] == "kubescheduler.config.k8s.io/v1" and cfg["kind"] == "KubeSchedulerConfiguration"
    )
    assert cfg["percentageOfNodesToScore"] == 100
    assert [p["schedulerName"] for p in cfg["profiles"]] == ["energaizer-scheduler"]
    assert cfg["leaderElection"] == {
        "leaderElect": True,
        "resourceNamespace": "ops",
        "resourceName": "prod-energaizer-scheduler",
    }
    (ext,) = cfg["extenders"]
    assert set(ext) <= EXTENDER_FIELDS
    assert ext["prioritizeVerb"] == "prioritize" and ext["filterVerb"] == "filter"
    assert ext["ignorable"] is True and ext["nodeCacheCapable"] is True and ext["enableHTTPS"] is False
    assert ext["managedResources"] == [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}]
    assert 0 < seconds(ext["httpTimeout"]) <= 1.0
    assert ext["weight"] >= 1
    # The URL reaches the extender's Service, which selects the extender's pods on the served port.
    service = named(objects, "Service", "prod-energaizer-extender")
    port = service["spec"]["ports"][0]
    assert ext["urlPrefix"] == f"http://prod-energaizer-extender.ops.svc:{port['port']}/scheduler"
    deployment = named(objects, "Deployment", "prod-energaizer-extender")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["energaizer"]
    assert container["args"] == ["extender", "--port", str(port["port"])]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {port["targetPort"]: port["port"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # The operator's metrics Service must not select extender pods, nor the extender's the operator's.
    operator_pod = named(objects, "Deployment", "prod-energaizer")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= operator_pod.items()
    metrics = named(objects, "Service", "prod-energaizer-metrics")
    assert not metrics["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_custom_values_reach_the_configuration(render) -> None:
    objects = render(CUSTOM)
    cfg = config(objects)
    assert cfg["profiles"] == [{"schedulerName": "green-scheduler"}]
    (ext,) = cfg["extenders"]
    assert "filterVerb" not in ext and ext["weight"] == 3 and ext["httpTimeout"] == "300ms"
    assert ext["urlPrefix"].endswith(":9099/scheduler")
    scheduler = named(objects, "Deployment", "energaizer-scheduler")["spec"]["template"]["spec"]
    assert scheduler["containers"][0]["image"] == "registry.k8s.io/kube-scheduler:v1.31.4"
    assert named(objects, "Deployment", "energaizer-extender")["spec"]["replicas"] == 3


def test_config_change_rolls_the_scheduler(render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = named(render(values), "Deployment", "energaizer-scheduler")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(ON) != checksum({"scheduler": {"enabled": True, "httpTimeout": "250ms"}})


def test_scheduler_runs_the_stock_image_with_its_config_and_rbac(render) -> None:
    objects = render(ON)
    deployment = named(objects, "Deployment", "energaizer-scheduler")
    pod = deployment["spec"]["template"]["spec"]
    assert "schedulerName" not in pod  # scheduled by the default scheduler, never by itself
    container = pod["containers"][0]
    assert container["image"].startswith("registry.k8s.io/kube-scheduler:")
    config_arg = next(a for a in container["command"] if a.startswith("--config="))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(
        n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "energaizer-scheduler-config"
    )
    assert config_arg == f"--config={mounts[config_volume]}/config.yaml"
    for probe in ("livenessProbe", "readinessProbe"):
        assert (
            container[probe]["httpGet"]["scheme"] == "HTTPS"
            and container[probe]["httpGet"]["port"] == "https"
        )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    account = pod["serviceAccountName"]
    assert account == "energaizer-scheduler"
    bound = {
        (b["kind"], b["roleRef"]["name"])
        for b in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding")
        if {"kind": "ServiceAccount", "name": account, "namespace": "energaizer-system"} in b["subjects"]
    }
    assert bound == {
        ("ClusterRoleBinding", "system:kube-scheduler"),
        ("ClusterRoleBinding", "system:volume-scheduler"),
        ("RoleBinding", "extension-apiserver-authentication-reader"),
        ("RoleBinding", "energaizer-scheduler-leader-election"),
    }
    reader = named(objects, "RoleBinding", "energaizer-scheduler-auth-reader")
    assert reader["metadata"]["namespace"] == "kube-system"
    lease_role = named(objects, "Role", "energaizer-scheduler-leader-election")
    assert {v for r in lease_role["rules"] for v in r["verbs"]} == {"create", "get", "update"}
    assert all(r["resources"] == ["leases"] for r in lease_role["rules"])


def test_extender_account_only_reads_nodes(render) -> None:
    objects = render(ON)
    role = named(objects, "ClusterRole", "energaizer-extender")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    binding = named(objects, "ClusterRoleBinding", "energaizer-extender")
    pod = named(objects, "Deployment", "energaizer-extender")["spec"]["template"]["spec"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "energaizer-system"}
    ]
    assert not [
        o for o in render(ON | {"rbac": {"create": False}}) if o["kind"].endswith(("Role", "RoleBinding"))
    ]


def test_extender_env_is_accepted_by_its_settings(render, tmp_path: Path) -> None:
    objects = render(CUSTOM)
    container = named(objects, "Deployment", "energaizer-extender")["spec"]["template"]["spec"]["containers"][
        0
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    product_map = named(objects, "ConfigMap", "energaizer-product-map")["data"]["product-map.yaml"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["ENERGAIZER_PRODUCT_MAP"] == f"@{mounts['product-map']}/product-map.yaml"
    assert env["ENERGAIZER_PROFILE"] == f"{mounts['profile']}/p.yaml"
    (tmp_path / "map.yaml").write_text(product_map)
    settings = OperatorSettings.from_env(env | {"ENERGAIZER_PRODUCT_MAP": f"@{tmp_path / 'map.yaml'}"})
    assert settings.product_map == {"Tesla-T4": "t4"}


BAD = {
    "timeout": {"scheduler": {"httpTimeout": "soon"}},
    "name": {"scheduler": {"name": "Green_Scheduler"}},
    "weight": {"scheduler": {"extenderWeight": 0}},
    "typo": {"scheduler": {"enabeld": True}},
    "port": {"extender": {"port": 0}},
}


@pytest.mark.parametrize("values", BAD.values(), ids=BAD.keys())
def test_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(values))


def test_documented_examples_are_valid(render) -> None:
    """docs/scheduler.md's YAML: the vLLM Deployment is valid Kubernetes and opts in as the chart expects;
    the KubeSchedulerConfiguration shown is the chart's."""
    from energaizer_operator.gate import GATE_ANNOTATION, GATE_NAME
    from energaizer_operator.pod_workload import ANNOTATION_WORKLOAD, parse_workload

    text = (CHART.parents[1] / "docs" / "scheduler.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    kinds = {b["kind"]: b for b in blocks}
    deployment = kinds["Deployment"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    pod = deployment["spec"]["template"]
    assert pod["spec"]["schedulerName"] == config(render(ON))["profiles"][0]["schedulerName"]
    assert parse_workload(pod["metadata"]["annotations"][ANNOTATION_WORKLOAD]).model == "llama-3.1-8b"
    assert kinds["KubeSchedulerConfiguration"] == config(render(ON))
    policy = kinds["ClusterPolicy"]["spec"]["rules"][0]
    gate = policy["mutate"]["patchStrategicMerge"]["metadata"]["annotations"]
    assert gate == {f"+({GATE_ANNOTATION})": GATE_NAME}


def test_pull_secrets_reach_every_pod(render) -> None:
    """A private mirror of kube-scheduler (scheduler.image.repository) needs imagePullSecrets as much as the
    energaizer image does."""
    values = ON | {"imagePullSecrets": [{"name": "regcred"}]}
    deployments = by_kind(render(values), "Deployment")
    assert len(deployments) == 3
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod.get("imagePullSecrets") == [{"name": "regcred"}], deployment["metadata"]["name"]
