"""Kueue-native steering: Jobs held by Kueue's admission gate until energaizer has chosen their GPU types.

A ``batch/v1`` Job that energaizer did not create, carrying ``kueue.x-k8s.io/admission-gated-by`` with
:data:`GATE_NAME` among its comma-separated names and an ``energaizer.io/workload`` annotation (JSON
of an AIJob ``spec.workload``) is estimated on the GPU types present in the cluster. One merge patch
then writes, on the Job and its pod template:

* a *required* node affinity on the products of every feasible type whose predicted energy is within
  the energy slack of the best (``energaizer.io/energy-slack``, default :data:`DEFAULT_ENERGY_SLACK`),
  ANDed with any affinity the template has, so Kueue keeps choosing among those flavors by quota;
* a *preferred* node affinity on the best type's products;
* the contract annotations (best type, its predicted energy and duration), the allowed types, and the
  power-cap advice (``energaizer.io/recommended-power-limit-watts``, budget ``energaizer.io/max-slowdown``);
* the gate with only :data:`GATE_NAME` removed (Kueue allows removing names, never adding them).

A Job whose workload cannot be read or run anywhere, or whose steering patch the API rejects (422), gets
a Warning Event and is released unsteered (its gate name removed): energaizer never holds a Job it cannot
place. A Job energaizer created for an AIJob (steered when it was created) that a namespace-wide policy
gated is released unchanged. GPUs per pod come from the pod
template's ``nvidia.com/gpu`` limit, replicas from ``spec.parallelism``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
import urllib3
from pydantic import ValidationError

from energaizer.errors import InvalidInputError
from energaizer.whatif import DEFAULT_MAX_SLOWDOWN
from energaizer_operator import AIJOB_LABEL, kube
from energaizer_operator.estimation import estimate_job
from energaizer_operator.inventory import Capacity, aijob_owner_uid, compute_capacity
from energaizer_operator.loops import DeletedObjects
from energaizer_operator.models import EstimateStatus
from energaizer_operator.pod_workload import ANNOTATION_WORKLOAD, job_spec, parse_workload, pod_gpus
from energaizer_operator.powercap import advise, power_annotations
from energaizer_operator.settings import OperatorSettings
from energaizer_operator.steering import _require_product, contract_annotations

logger = logging.getLogger("energaizer_operator.gate")

GATE_ANNOTATION = "kueue.x-k8s.io/admission-gated-by"
GATE_NAME = "energaizer.io/placer"
ANNOTATION_ENERGY_SLACK = "energaizer.io/energy-slack"
ANNOTATION_MAX_SLOWDOWN = "energaizer.io/max-slowdown"
ANNOTATION_GPU_TYPES = "energaizer.io/gpu-types"  # the types the required affinity allows, best first
DEFAULT_ENERGY_SLACK = 0.2
PREFERRED_WEIGHT = 100
ATTEMPTS = 5  # failed patches before an error line; the handler keeps retrying (nothing else would)
MAX_BACKOFF_SECONDS = 30.0


def gate_names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def gated_by_us(annotations: Mapping[str, str] | None) -> bool:
    return GATE_NAME in gate_names((annotations or {}).get(GATE_ANNOTATION))


def created_by_energaizer(meta: Mapping[str, Any]) -> bool:
    return bool(aijob_owner_uid(meta)) or AIJOB_LABEL in (meta.get("labels") or {})


def _fraction(annotations: Mapping[str, str], key: str, default: float) -> float:
    text = annotations.get(key)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(key, f"not a number: {text!r}") from None
    if not 0 <= value <= 10:
        raise InvalidInputError(key, f"must be between 0 and 10, got {value:g}")
    return value


@dataclass
class GateDecision:
    """What to write: a merge patch, and the Event that explains it."""

    patch: dict[str, Any]
    reason: str
    message: str
    warning: bool = False
    estimates: list[EstimateStatus] = field(default_factory=list)


def _release(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The gate annotation with only our name removed (null = the whole annotation goes)."""
    rest = [n for n in gate_names(annotations.get(GATE_ANNOTATION)) if n != GATE_NAME]
    return {GATE_ANNOTATION: ",".join(rest) if rest else None}


def _prefer(pod_spec: dict[str, Any], label: str, products: Sequence[str]) -> None:
    node_affinity = pod_spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    preferred = [
        p
        for p in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if not any(e.get("key") == label for e in (p.get("preference") or {}).get("matchExpressions") or [])
    ]
    preferred.append(
        {
            "weight": PREFERRED_WEIGHT,
            "preference": {
                "matchExpressions": [{"key": label, "operator": "In", "values": sorted(products)}]
            },
        }
    )
    node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred


def _accepts(expression: Mapping[str, Any], product: str) -> bool:
    """Whether a node whose ``label`` is ``product`` meets one NodeSelectorRequirement on that label."""
    op, values = expression.get("operator"), list(expression.get("values") or [])
    if op == "In":
        return product in values
    if op == "NotIn":
        return product not in values
    if op == "Exists":
        return True
    if op in ("Gt", "Lt") and len(values) == 1:
        try:
            number, bound = int(product), int(values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound
    return False  # DoesNotExist, or an operator the scheduler would not match either


def template_admits(pod_spec: Mapping[str, Any], label: str, product: str) -> bool:
    """Whether the pod template's own ``nodeSelector`` and required node affinity let it run on a node
    whose ``label`` is ``product``, in every one of its terms (the steering affinity replaces the
    template's expressions on ``label`` in each term, so it may only narrow them)."""
    selector = pod_spec.get("nodeSelector") or {}
    if label in selector and selector[label] != product:
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    return all(
        _accepts(e, product)
        for term in required.get("nodeSelectorTerms") or []
        for e in (term or {}).get("matchExpressions") or []
        if e.get("key") == label
    )


def within_slack(energy_joules: Mapping[str, float], slack: float) -> list[str]:
    """GPU types whose energy is at most ``(1 + slack)`` times the least, least energy first."""
    if not energy_joules:
        return []
    best = min(energy_joules.values())
    return sorted(
        (t for t, e in energy_joules.items() if e <= best * (1 + slack)), key=energy_joules.__getitem__
    )


def energy_affinity(
    pod_spec: dict[str, Any], label: str, allowed_products: Sequence[str], best_products: Sequence[str]
) -> None:
    """In place: require one of ``allowed_products`` (ANDed into the pod's own required terms) and prefer
    ``best_products``. Also usable by the placer for the Jobs it creates for queue-labelled AIJobs."""
    _require_product(pod_spec, label, allowed_products)
    _prefer(pod_spec, label, best_products)


def _too_small(
    estimate: EstimateStatus, gpus: int, node_gpus: Mapping[str, int], products: Sequence[str]
) -> EstimateStatus:
    most = max((node_gpus.get(p, 0) for p in products), default=0)
    reason = f"a pod asks for {gpus} GPUs and no {estimate.gpu_type} node has more than {most}"
    return estimate.model_copy(
        update={
            "feasible": False,
            "energy_joules": None,
            "duration_seconds": None,
            "average_power_watts": None,
            "reason": reason,
        }
    )


def decide_gated_job(
    job: Mapping[str, Any],
    products: Mapping[str, Sequence[str]],
    settings: OperatorSettings,
    *,
    node_gpus: Mapping[str, int],
) -> GateDecision:
    """The patch for one gated Job, given the GPU types present (catalog id -> product label values) and
    the most allocatable GPUs on one node of each product (:attr:`Capacity.node_gpus`): a pod gets all its
    GPUs on one node, so a product whose nodes all have fewer than a pod asks for is never allowed (Kueue
    would admit the Job there, on quota, and its pods would stay Pending)."""
    meta = job.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    template = (job.get("spec") or {}).get("template") or {}
    release = {"metadata": {"annotations": _release(annotations)}}
    # only the GPU products the template's own node constraints allow (the user's choice, never widened)
    label = settings.gpu_product_label
    admitted = {
        t: [p for p in ps if template_admits(template.get("spec") or {}, label, p)]
        for t, ps in products.items()
    }
    products = {t: ps for t, ps in admitted.items() if ps}
    if ANNOTATION_WORKLOAD not in annotations:  # gated by a namespace-wide policy, say: nothing to estimate
        message = f"no {ANNOTATION_WORKLOAD} annotation: not steered, released unchanged"
        return GateDecision(release, "NoWorkload", message)
    try:
        workload = parse_workload(annotations.get(ANNOTATION_WORKLOAD, ""))
        gpus = pod_gpus(template.get("spec") or {}, settings.gpu_resource)
        if gpus <= 0:
            raise InvalidInputError(
                f"spec.template.spec.containers[].resources.limits.{settings.gpu_resource}",
                "the pod template requests no GPUs",
            )
        replicas = max(1, int((job.get("spec") or {}).get("parallelism") or 1))
        slack = _fraction(annotations, ANNOTATION_ENERGY_SLACK, DEFAULT_ENERGY_SLACK)
        budget = _fraction(annotations, ANNOTATION_MAX_SLOWDOWN, DEFAULT_MAX_SLOWDOWN)
        spec = job_spec(workload, gpus, replicas, maxSlowdown=budget)
        types = sorted(products)
        estimates = estimate_job(spec, types, settings.profile) if types else []
    except (InvalidInputError, ValidationError) as exc:
        message = f"not steered, released unchanged: {exc}"
        return GateDecision(release, "InvalidWorkload", message[:1000], warning=True)
    fitting = {t: [p for p in ps if node_gpus.get(p, 0) >= gpus] for t, ps in products.items()}
    estimates = [
        _too_small(e, gpus, node_gpus, products[e.gpu_type]) if e.feasible and not fitting[e.gpu_type] else e
        for e in estimates
    ]
    products = {t: ps for t, ps in fitting.items() if ps}
    feasible = sorted((e for e in estimates if e.feasible), key=lambda e: e.energy_joules)
    if not feasible:
        why = "; ".join(f"{e.gpu_type}: {e.reason}" for e in estimates) or (
            "the pod template's nodeSelector/node affinity admits none of the GPU products present"
            if admitted
            else "no GPU nodes of a known type"
        )
        message = f"no GPU type present can run it ({why}); released unchanged"
        return GateDecision(release, "NoFeasibleGpuType", message[:1000], warning=True, estimates=estimates)
    best = feasible[0]
    by_type = {e.gpu_type: e for e in feasible}
    allowed = [by_type[t] for t in within_slack({e.gpu_type: e.energy_joules for e in feasible}, slack)]
    allowed_products = sorted({p for e in allowed for p in products[e.gpu_type]})
    pod_spec = copy.deepcopy(template.get("spec") or {})
    energy_affinity(pod_spec, label, allowed_products, products[best.gpu_type])
    advice = advise(spec, best.gpu_type, settings.profile)
    written = {
        **contract_annotations(best.gpu_type, best.energy_joules, best.duration_seconds),
        **power_annotations(advice),
        ANNOTATION_GPU_TYPES: ",".join(e.gpu_type for e in allowed),
    }
    patch = {
        "metadata": {"annotations": {**written, **release["metadata"]["annotations"]}},
        "spec": {
            "template": {"metadata": {"annotations": written}, "spec": {"affinity": pod_spec["affinity"]}}
        },
    }
    message = (
        f"{best.gpu_type} preferred ({best.energy_joules:.4g} J, {best.duration_seconds:.4g} s); allowed "
        + ", ".join(f"{e.gpu_type} ({e.energy_joules:.4g} J)" for e in allowed)
        + f" (energy within {slack:.0%})"
    )
    if advice is not None:
        message += (
            f"; recommended power limit {advice.power_limit_watts:.0f} W/GPU: {advice.energy_joules:.4g} J"
            f" within {budget:.0%} slowdown"
        )
    return GateDecision(patch, "Steered", message[:1000], estimates=estimates)


def _present(gpu_nodes: kopf.Index, deleted: DeletedObjects) -> Capacity:
    return compute_capacity(deleted.live(n for store in list(gpu_nodes.values()) for n in store), [], [])


@kopf.on.event(
    "batch",
    "v1",
    "jobs",
    annotations={GATE_ANNOTATION: kopf.PRESENT},
    when=lambda annotations, **_: gated_by_us(annotations),
)
async def steer_gated_job(
    body: kopf.Body, event: kopf.RawEvent, memo: kopf.Memo, gpu_nodes: kopf.Index, **_: Any
) -> None:
    if event.get("type") == "DELETED":
        return
    # Every replica handles gated Jobs (no leader needed): each patch carries the resourceVersion it
    # read, so of two replicas one wins and the other re-reads a Job that is no longer gated by us.
    settings: OperatorSettings = memo["state"].settings
    namespace, name = body.metadata.namespace, body.metadata.name
    job: Mapping[str, Any] = dict(body)
    rejected = ""  # the API refused the steering patch once: release the Job unsteered
    # Until the Job is released or gone, however long the API server fails: a gated Job gets no further
    # watch event (nothing else writes it, and kopf lists again only on a new watch), so a handler that gave
    # up left it gated for good (a 20 s API server restart during a burst did).
    attempt = 0
    while True:
        annotations = (job.get("metadata") or {}).get("annotations") or {}
        if not gated_by_us(annotations):
            return  # released meanwhile (by us in an earlier event, or the gate was dropped)
        if created_by_energaizer(job.get("metadata") or {}):
            # an AIJob's Job, steered by the placer when it created it, and gated by a policy that gates
            # every Job of its namespace: only energaizer removes its name, so it would never be admitted
            message = "created by energaizer for an AIJob (steered at creation); released unchanged"
            release = {"metadata": {"annotations": _release(annotations)}}
            decision = GateDecision(release, "CreatedForAIJob", message)
        elif rejected:
            message = f"the steering patch was rejected ({rejected}); released unchanged"
            release = {"metadata": {"annotations": _release(annotations)}}
            decision = GateDecision(release, "SteeringRejected", message, warning=True)
        else:
            present = _present(gpu_nodes, memo["state"].deleted)
            decision = await asyncio.to_thread(
                decide_gated_job, job, present.products, settings, node_gpus=present.node_gpus
            )
        patch = copy.deepcopy(decision.patch)
        patch["metadata"]["resourceVersion"] = (job.get("metadata") or {}).get("resourceVersion")
        try:
            await asyncio.to_thread(kube.patch_job, namespace, name, patch)
        except (kube.ApiException, urllib3.exceptions.HTTPError) as exc:  # HTTPError: no answer at all
            status = getattr(exc, "status", None)
            if status == 404:
                return
            if status == 422 and "spec" in decision.patch:
                rejected = str(exc.reason or exc.status)[:300]
            why = status or type(exc).__name__
            attempt += 1
            log = logger.error if attempt == ATTEMPTS else logger.warning
            log("gated Job %s/%s: patch failed %d times (%s); retrying", namespace, name, attempt, why)
            await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 0.25 * 2**attempt))
            try:
                job = await asyncio.to_thread(kube.read_job, namespace, name)
            except (kube.ApiException, urllib3.exceptions.HTTPError) as read_exc:
                if getattr(read_exc, "status", None) == 404:
                    return
            continue
        # kopf.event, not kopf.info: the operator posts only WARNING-level log lines as Events
        kind = "Warning" if decision.warning else "Normal"
        kopf.event(dict(body), type=kind, reason=decision.reason, message=decision.message)
        logger.info("gated Job %s/%s: %s: %s", namespace, name, decision.reason, decision.message)
        return
