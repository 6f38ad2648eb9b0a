"""GPU inventory: what the kopf indices store per Node, Pod and steered Job, and free GPUs per type.

Pure functions over object bodies (unit-testable without kopf); :mod:`energaizer_operator.handlers`
wires them into ``@kopf.index`` handlers. Free GPUs of a type = allocatable GPUs of its schedulable,
Ready nodes - GPUs requested by live pods bound to them (pods of energaizer Jobs included: a pod counts
where it runs) - the GPUs of each unfinished, unsuspended energaizer Job that none of its bound pods
holds yet, on the type its pods will run on (:func:`compute_capacity`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from energaizer_operator import AIJOB_LABEL, ANNOTATION_GPU_TYPE, ANNOTATION_GPUS, GROUP, KIND

logger = logging.getLogger(__name__)

MIG_MARKER = "-MIG-"
SHARED_SUFFIX = "-SHARED"


@dataclass(frozen=True)
class NodeGPUs:
    """A node that carries the GPU product label."""

    name: str
    product: str  # the label value as written by GPU Feature Discovery
    gpu_type: str | None  # catalog id, None when the product is unknown or unsupported
    allocatable: int
    schedulable: bool  # not cordoned and Ready
    reason: str = ""  # why gpu_type is None
    uid: str = ""  # the Node's metadata.uid (relist.py drops the entries of deleted objects by uid)


@dataclass(frozen=True)
class PodGPUs:
    node: str
    gpus: int
    uid: str = ""
    job_uid: str = ""  # the uid of the AIJob's Job that owns the pod ("" for any other pod)


@dataclass(frozen=True)
class SteeredJob:
    """A batch/v1 Job created by the operator (it carries the gpu-type annotation)."""

    namespace: str
    name: str
    owner_uid: str | None
    gpu_type: str
    gpus: int
    finished: bool
    phase: str  # "Placed" (suspended or no pods yet), "Running", "Succeeded", "Failed"
    predicted_energy_joules: float | None = None
    predicted_duration_seconds: float | None = None
    uid: str = ""  # the Job's own uid (owner_uid is its AIJob's)
    suspended: bool = False  # spec.suspend: not admitted yet, or preempted/evicted by Kueue
    # the GPU product its pod template's nodeSelector names (Kueue writes the admitted flavor's node labels
    # there when it unsuspends the Job), None when it names none
    selected_product: str | None = None


def normalise_product(product: str) -> tuple[str | None, str]:
    """GFD label value -> (base product, reason). Time-sliced ``-SHARED`` GPUs are whole GPUs of the base
    product; ``-MIG-`` slices are not whole GPUs, so the operator does not place on them."""
    value = product.strip()
    if value.upper().endswith(SHARED_SUFFIX):
        value = value[: -len(SHARED_SUFFIX)]
    if MIG_MARKER in value.upper():
        return None, f"MIG slices are not placed on ({product})"
    return value, ""


def resolve_gpu_type(product: str, mapping: Mapping[str, str]) -> tuple[str | None, str]:
    """Product label value -> (catalog id or None, reason). The configured mapping wins over the catalog."""
    if product in mapping:
        return mapping[product], ""
    base, reason = normalise_product(product)
    if base is None:
        return None, reason
    if base in mapping:
        return mapping[base], ""
    from energaizer.catalog import gpu_id_for_product

    gpu_id = gpu_id_for_product(base, dict(mapping) or None)
    if gpu_id is None:
        return None, f"unknown GPU product {product!r} (set ENERGAIZER_PRODUCT_MAP)"
    return gpu_id, ""


# Kubernetes quantity suffixes (resource.Quantity): binary (Ki = 1024 ...), decimal SI (k = 1000 ...) and milli;
# the binary ones first, so that "Mi" is not read as "M" (and "i")
_QUANTITY_SUFFIXES = {
    **{s: Decimal(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
    "m": Decimal("0.001"),
    **{s: Decimal(1000**i) for i, s in enumerate("kMGTPE", start=1)},
}
MAX_GPUS_PER_OBJECT = 1_000_000  # more than any node or pod has: a larger quantity is clipped here


def parse_quantity(value: Any) -> int:
    """An integer resource quantity (GPUs are whole numbers, rounded down): ``"4"``, ``4``, ``"4000m"``,
    ``"2k"``, ``"1e3"``; 0 for what is not a quantity, at most :data:`MAX_GPUS_PER_OBJECT` (a count that
    large is no GPU count, and the placement's arithmetic must stay finite)."""
    if value is None or isinstance(value, bool):
        return 0
    text = str(value).strip()
    scale = Decimal(1)
    for suffix, multiplier in _QUANTITY_SUFFIXES.items():
        # "1E" is exa, "1E3" a thousand (an exponent, not a suffix)
        if text.endswith(suffix) and len(text) > len(suffix):
            text, scale = text[: -len(suffix)], multiplier
            break
    try:
        number = Decimal(text) * scale
    except (InvalidOperation, ValueError):
        return 0
    if not number.is_finite() or number <= 0:
        return 0
    return int(min(number, Decimal(MAX_GPUS_PER_OBJECT)))


def _node_ready(status: Mapping[str, Any]) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return True  # no Ready condition reported (yet): do not exclude


def node_gpus(
    body: Mapping[str, Any], *, product_label: str, gpu_resource: str, mapping: Mapping[str, str]
) -> NodeGPUs | None:
    """The GPU view of a Node, or None when it carries no product label."""
    meta = body.get("metadata") or {}
    product = (meta.get("labels") or {}).get(product_label)
    if not product:
        return None
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    allocatable = parse_quantity((status.get("allocatable") or {}).get(gpu_resource))
    gpu_type, reason = resolve_gpu_type(product, mapping)
    schedulable = not spec.get("unschedulable", False) and _node_ready(status)
    return NodeGPUs(
        meta.get("name", ""), product, gpu_type, allocatable, schedulable, reason, uid=meta.get("uid", "")
    )


def pod_gpu_request(pod_spec: Mapping[str, Any], gpu_resource: str) -> int:
    """GPUs a pod holds: max(sum over containers, largest init container), limits or requests."""

    def one(container: Mapping[str, Any]) -> int:
        res = container.get("resources") or {}
        value = (res.get("limits") or {}).get(gpu_resource, (res.get("requests") or {}).get(gpu_resource))
        return parse_quantity(value)

    main = sum(one(c) for c in pod_spec.get("containers") or [])
    init = max((one(c) for c in pod_spec.get("initContainers") or []), default=0)
    return max(main, init)


def pod_gpus(body: Mapping[str, Any], *, gpu_resource: str) -> PodGPUs | None:
    """GPUs held by a live pod bound to a node; None for finished pods, unbound pods and pods without
    GPUs. A pod of an AIJob's Job names that Job (``job_uid``), whose own charge then leaves its GPUs out:
    they count on the node the pod is bound to, whichever GPU type the Job was placed on."""
    meta = body.get("metadata") or {}
    job_uid = ""
    if ANNOTATION_GPU_TYPE in (meta.get("annotations") or {}) and AIJOB_LABEL in (meta.get("labels") or {}):
        # a pod of an AIJob's Job (Jobs steered through the Kueue gate are not: no Job charge to leave out)
        job_uid = next(
            (
                ref.get("uid") or ""
                for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == "Job" and ref.get("controller")
            ),
            "",
        )
    status = body.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    spec = body.get("spec") or {}
    node = spec.get("nodeName")
    gpus = pod_gpu_request(spec, gpu_resource)
    if not node or gpus <= 0:
        return None
    return PodGPUs(node, gpus, uid=meta.get("uid", ""), job_uid=job_uid)


def job_phase(status: Mapping[str, Any], suspended: bool) -> tuple[str, bool]:
    """batch/v1 Job status -> (mirrored AIJob phase, finished)."""
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "Succeeded", True
        if cond.get("type") == "Failed":
            return "Failed", True
    if not suspended and (int(status.get("active") or 0) > 0 or int(status.get("ready") or 0) > 0):
        return "Running", False
    return "Placed", False


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def aijob_owner_uid(meta: Mapping[str, Any]) -> str:
    """The uid of the AIJob an object's ownerReferences name ("" if none): any served version of the group,
    so a Job created under an earlier version of the CRD is still its AIJob's after an upgrade."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion") or "").split("/")[0] == GROUP:
            return str(ref.get("uid") or "")
    return ""


def steered_job(body: Mapping[str, Any], *, product_label: str = "") -> SteeredJob | None:
    """The view of a Job the operator created; ``product_label``: the node label of the GPU product."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    gpu_type = annotations.get(ANNOTATION_GPU_TYPE)
    if not gpu_type:
        return None
    owner_uid = aijob_owner_uid(meta) or None
    spec = body.get("spec") or {}
    suspended = bool(spec.get("suspend"))
    phase, finished = job_phase(body.get("status") or {}, suspended)
    selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    selected = selector.get(product_label) if product_label else None
    return SteeredJob(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        owner_uid=owner_uid,
        gpu_type=gpu_type,
        gpus=parse_quantity(annotations.get(ANNOTATION_GPUS)),
        finished=finished,
        phase=phase,
        predicted_energy_joules=_float(annotations.get("energaizer.io/predicted-energy-joules")),
        predicted_duration_seconds=_float(annotations.get("energaizer.io/predicted-duration-seconds")),
        uid=meta.get("uid", ""),
        suspended=suspended,
        selected_product=selected if isinstance(selected, str) and selected else None,
    )


@dataclass
class Capacity:
    """Free GPUs per catalog type, the largest free block on one node, and the product labels."""

    free: dict[str, int] = field(default_factory=dict)
    largest_free_node: dict[str, int] = field(default_factory=dict)
    products: dict[str, list[str]] = field(default_factory=dict)  # type -> label values seen
    # product label value -> the most allocatable GPUs on one node of it (Ready or not: a node down for
    # maintenance comes back), i.e. the most GPUs one pod can ever get there
    node_gpus: dict[str, int] = field(default_factory=dict)
    unknown_products: dict[str, str] = field(default_factory=dict)  # product -> reason

    @property
    def types(self) -> list[str]:
        return sorted(self.products)

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        return tuple((t, self.free.get(t, 0), self.largest_free_node.get(t, 0)) for t in self.types)


def compute_capacity(
    nodes: Iterable[NodeGPUs],
    pods: Iterable[PodGPUs],
    jobs: Iterable[SteeredJob],
    reserved: Mapping[str, int] | None = None,
) -> Capacity:
    """Free GPUs per type. ``reserved`` holds GPUs already promised by this operator but not yet
    visible as Jobs (placements in flight).

    Every live bound pod counts on its node's type, an AIJob's pod too (Kueue may admit its Job on another
    flavor than the placed type). An unfinished Job holds, besides its bound pods, the GPUs none of them
    holds yet (pods not created or not bound): on the type of the product its pod template's nodeSelector
    names (Kueue's admitted flavor), else on the placed type (the only one a Job without a queue has in
    its required affinity). A suspended Job holds nothing more: it waits in Kueue's queue (or was
    preempted) and runs on no node until Kueue admits it, maybe on another allowed flavor."""
    used_by_node: dict[str, int] = {}
    bound_by_job: dict[str, int] = {}
    for pod in pods:
        used_by_node[pod.node] = used_by_node.get(pod.node, 0) + pod.gpus
        if pod.job_uid:
            bound_by_job[pod.job_uid] = bound_by_job.get(pod.job_uid, 0) + pod.gpus
    cap = Capacity()
    type_of_product: dict[str, str] = {}
    for node in nodes:
        if node.gpu_type is None:
            cap.unknown_products[node.product] = node.reason
            continue
        type_of_product[node.product] = node.gpu_type
        products = cap.products.setdefault(node.gpu_type, [])
        if node.product not in products:
            products.append(node.product)
        cap.node_gpus[node.product] = max(cap.node_gpus.get(node.product, 0), node.allocatable)
        cap.free.setdefault(node.gpu_type, 0)
        cap.largest_free_node.setdefault(node.gpu_type, 0)
        if not node.schedulable:
            continue
        node_free = max(0, node.allocatable - used_by_node.get(node.name, 0))
        cap.free[node.gpu_type] += node_free
        cap.largest_free_node[node.gpu_type] = max(cap.largest_free_node[node.gpu_type], node_free)
    for job in jobs:
        if job.finished or job.suspended:
            continue
        unbound = job.gpus - bound_by_job.get(job.uid, 0) if job.uid else job.gpus
        gpu_type = type_of_product.get(job.selected_product or "", job.gpu_type)
        if unbound > 0 and gpu_type in cap.free:
            cap.free[gpu_type] -= unbound
    for gpu_type, gpus in (reserved or {}).items():
        if gpu_type in cap.free:
            cap.free[gpu_type] -= gpus
    for gpu_type, value in cap.free.items():
        cap.free[gpu_type] = max(0, value)
        cap.largest_free_node[gpu_type] = min(cap.largest_free_node[gpu_type], cap.free[gpu_type])
    for products in cap.products.values():
        products.sort()
    return cap
