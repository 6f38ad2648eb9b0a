"""Pod placement and security knobs of every workload the chart renders: the operator (top-level values), the
scheduler extender (`extender.*`) and the second kube-scheduler (`scheduler.*`) take the same set, each under
its own key; each value must land on its own pod and render valid Kubernetes at every version the tests use."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from deploy_support import CHART, KUBE_VERSIONS, by_kind

# component -> Deployment name (release "energaizer")
DEPLOYMENTS = {
    "operator": "energaizer",
    "extender": "energaizer-extender",
    "scheduler": "energaizer-scheduler",
}
ON = {"scheduler": {"enabled": True}}  # renders all three Deployments


def _toleration(component: str) -> list[dict[str, Any]]:
    return [{"key": f"dedicated-{component}", "operator": "Equal", "value": "system", "effect": "NoSchedule"}]


def _node_affinity(component: str) -> dict[str, Any]:
    term = {"matchExpressions": [{"key": "node-pool", "operator": "In", "values": [f"system-{component}"]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _spread(component: str) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"spread": component}},
        }
    ]


def _uid(component: str) -> int:
    return {"operator": 10001, "extender": 10002, "scheduler": 10003}[component]


# knob -> (value for a component, where it lands: pod template -> rendered value)
KNOBS: dict[str, tuple[Any, Any]] = {
    "nodeSelector": (
        lambda c: {"node-role.kubernetes.io/system": c},
        lambda pod: pod["spec"].get("nodeSelector"),
    ),
    "tolerations": (_toleration, lambda pod: pod["spec"].get("tolerations")),
    "affinity": (_node_affinity, lambda pod: pod["spec"].get("affinity")),
    "topologySpreadConstraints": (_spread, lambda pod: pod["spec"].get("topologySpreadConstraints")),
    "priorityClassName": (lambda c: f"critical-{c}", lambda pod: pod["spec"].get("priorityClassName")),
    "resources": (
        lambda c: {"requests": {"cpu": f"{_uid(c) % 100}m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
        lambda pod: pod["spec"]["containers"][0].get("resources"),
    ),
}
# Maps merged with the chart's own labels, annotations and locked-down security contexts: the set entries
# must be there.
MERGED_KNOBS: dict[str, tuple[Any, Any]] = {
    "podSecurityContext": (
        lambda c: {"runAsUser": _uid(c), "supplementalGroups": [_uid(c)]},
        lambda pod: pod["spec"].get("securityContext", {}),
    ),
    "securityContext": (
        lambda c: {"runAsUser": _uid(c), "runAsGroup": _uid(c)},
        lambda pod: pod["spec"]["containers"][0].get("securityContext", {}),
    ),
    "podLabels": (lambda c: {"team": f"ml-{c}"}, lambda pod: pod["metadata"].get("labels", {})),
    "podAnnotations": (
        lambda c: {"example.com/owner": f"ops-{c}"},
        lambda pod: pod["metadata"].get("annotations", {}),
    ),
}


def _values(knob: str, value_of: Any) -> dict[str, Any]:
    """The knob set on every component at once, with a distinct value for each."""
    return {
        knob: value_of("operator"),
        "extender": {knob: value_of("extender")},
        "scheduler": {"enabled": True, knob: value_of("scheduler")},
    }


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    assert set(deployments) == set(DEPLOYMENTS.values())
    return {c: deployments[name]["spec"]["template"] for c, name in DEPLOYMENTS.items()}


def _validate(objects: list[dict[str, Any]]) -> None:
    for version in KUBE_VERSIONS:
        for obj in objects:
            if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
                kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("knob", KNOBS)
def test_each_knob_lands_on_its_own_pod(render, knob: str) -> None:
    value_of, landed = KNOBS[knob]
    objects = render(_values(knob, value_of))
    for component, pod in _pods(objects).items():
        assert landed(pod) == value_of(component), f"{knob} of {component}"
    _validate(objects)


@pytest.mark.parametrize("knob", MERGED_KNOBS)
def test_each_merged_knob_lands_on_its_own_pod(render, knob: str) -> None:
    value_of, landed = MERGED_KNOBS[knob]
    objects = render(_values(knob, value_of))
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    for component, pod in _pods(objects).items():
        assert value_of(component).items() <= landed(pod).items(), f"{knob} of {component}"
        for other in DEPLOYMENTS.keys() - {component}:
            assert not value_of(other).items() <= landed(pod).items(), f"{knob} of {other} on {component}"
        # What the chart sets stays: the selector still matches, the checksum rolls the pod, the root stays
        # read-only with no capabilities.
        selector = deployments[DEPLOYMENTS[component]]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert any(k.startswith("checksum/") for k in pod["metadata"]["annotations"])
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        container = pod["spec"]["containers"][0]["securityContext"]
        assert container["readOnlyRootFilesystem"] is True and container["allowPrivilegeEscalation"] is False
        assert container["capabilities"] == {"drop": ["ALL"]} and container["privileged"] is False
    _validate(objects)


def test_every_knob_at_once_is_valid_and_linted(render) -> None:
    values: dict[str, Any] = {"scheduler": {"enabled": True}, "extender": {}}
    for knob, (value_of, _) in (KNOBS | MERGED_KNOBS).items():
        for component, part in _values(knob, value_of).items():
            if isinstance(part, dict) and component in ("extender", "scheduler"):
                values[component] |= part
            else:
                values[component] = part
    objects = render(values)
    pods = _pods(objects)
    for knob, (value_of, landed) in KNOBS.items():
        assert all(landed(pods[c]) == value_of(c) for c in DEPLOYMENTS), knob
    for knob, (value_of, landed) in MERGED_KNOBS.items():
        assert all(value_of(c).items() <= landed(pods[c]).items() for c in DEPLOYMENTS), knob
    _validate(objects)
    report = helm.lint(CHART, values, strict=True, kube_version="v1.33.0")
    assert report["errors"] == []


# The knobs every pod took from the top-level values before the components had their own: unset on a
# component, they still apply to it (an upgrade keeps the extender and scheduler where they were); the
# security contexts are merged key by key.
INHERITED = ("nodeSelector", "tolerations", "priorityClassName", "podSecurityContext", "securityContext")


@pytest.mark.parametrize("knob", INHERITED)
def test_unset_component_knob_takes_the_top_level_value(render, knob: str) -> None:
    value_of, landed = (KNOBS | MERGED_KNOBS)[knob]

    def has(pod: dict[str, Any], component: str) -> bool:
        if knob in MERGED_KNOBS:
            return value_of(component).items() <= landed(pod).items()
        return landed(pod) == value_of(component)

    pods = _pods(render(ON | {knob: value_of("operator")}))
    assert all(has(pod, "operator") for pod in pods.values())
    # its own value wins
    pods = _pods(
        render({knob: value_of("operator"), "scheduler": {"enabled": True, knob: value_of("scheduler")}})
    )
    assert has(pods["scheduler"], "scheduler") and not has(pods["scheduler"], "operator")
    assert has(pods["extender"], "operator") and has(pods["operator"], "operator")


@pytest.mark.parametrize("knob", ["affinity", "topologySpreadConstraints", "podLabels", "podAnnotations"])
def test_pod_selecting_knobs_are_not_inherited(render, knob: str) -> None:
    """Affinity and spread constraints name pod labels, and labels and annotations describe one pod: the
    operator's never reach the extender or the scheduler."""
    value_of, landed = (KNOBS | MERGED_KNOBS)[knob]
    pods = _pods(render(ON | {knob: value_of("operator")}))
    for component in ("extender", "scheduler"):
        rendered = landed(pods[component])
        if isinstance(rendered, dict) and knob.startswith("pod"):
            assert not value_of("operator").items() <= rendered.items()
        else:
            assert rendered != value_of("operator")


def test_default_affinity_spreads_each_components_replicas(render) -> None:
    """Empty affinity: replicas of one component prefer different nodes (anti-affinity to their own pods
    only, never to another component's)."""
    objects = render(ON)
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    for name in DEPLOYMENTS.values():
        deployment = deployments[name]
        (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert term["podAffinityTerm"]["labelSelector"] == {
            "matchLabels": deployment["spec"]["selector"]["matchLabels"]
        }


@pytest.mark.parametrize("component", DEPLOYMENTS)
def test_spread_constraint_without_selector_selects_its_own_pods(render, component: str) -> None:
    constraint = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
    }
    values = ON | ({"topologySpreadConstraints": [constraint]} if component == "operator" else {})
    if component != "operator":
        values = values | {component: {"topologySpreadConstraints": [constraint]}}
        if component == "scheduler":
            values[component]["enabled"] = True
    objects = render(values)
    deployment = next(
        d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == DEPLOYMENTS[component]
    )
    (rendered,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert rendered == constraint | {
        "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
    }
    _validate(objects)


def _budgets(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in by_kind(objects, "PodDisruptionBudget")}


def test_every_replicated_component_has_a_disruption_budget(render) -> None:
    """Like the operator's, the extender's and the scheduler's budgets keep one replica through drains,
    rendered only with more than one replica, each selecting its own pods only."""
    objects = render({"scheduler": {"enabled": True, "replicas": 2}})
    budgets = _budgets(objects)
    assert set(budgets) == set(DEPLOYMENTS.values())
    pods = _pods(objects)
    for component, name in DEPLOYMENTS.items():
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert budgets[name]["spec"]["minAvailable"] == 1
        for other, pod in pods.items():
            assert (selector.items() <= pod["metadata"]["labels"].items()) == (other == component)
    _validate(objects)
    # one scheduler replica (its default): no budget, it would block every drain
    assert set(_budgets(render(ON))) == {"energaizer", "energaizer-extender"}
    off = {
        "extender": {"podDisruptionBudget": {"enabled": False}},
        "scheduler": {"enabled": True, "replicas": 2, "podDisruptionBudget": {"minAvailable": "50%"}},
    }
    budgets = _budgets(render(off))
    assert set(budgets) == {"energaizer", "energaizer-scheduler"}
    assert budgets["energaizer-scheduler"]["spec"]["minAvailable"] == "50%"


BAD = {
    "extender-root": {"extender": {"podSecurityContext": {"runAsNonRoot": False}}},
    "scheduler-privileged": {"scheduler": {"securityContext": {"privileged": True}}},
    "extender-writable-root": {"extender": {"securityContext": {"readOnlyRootFilesystem": False}}},
    "scheduler-node-selector": {"scheduler": {"nodeSelector": {"pool": 1}}},
    "extender-tolerations": {"extender": {"tolerations": {"key": "dedicated"}}},
    "spread-without-key": {
        "topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]
    },
    "scheduler-budget-typo": {"scheduler": {"podDisruptionBudget": {"minAvailabe": 1}}},
}


@pytest.mark.parametrize("values", BAD.values(), ids=BAD.keys())
def test_schema_rejects_bad_component_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(values))
