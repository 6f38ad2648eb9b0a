"""Scores and filter verdicts for one pod on a set of nodes, from cached per-(workload, GPU type) estimates.

Pure Python over plain JSON objects (no HTTP, no Kubernetes client). The estimator runs only for a
(workload, GPU type) pair it has not seen; every later request for that pair is a dictionary lookup.

Score (kube-scheduler's extender range 0-10): 10 for the GPU type with the least predicted energy
among the request's feasible types; any other feasible type ``round(10 * E_min / E)``, at most 9, so
a type needing twice the energy scores 5; 0 for an infeasible type and for a node whose GPU type
energaizer does not know (no product label, unknown product, MIG slice).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from energaizer.errors import InvalidInputError
from energaizer_operator.estimation import estimate_job
from energaizer_operator.inventory import resolve_gpu_type
from energaizer_operator.models import AIJobSpec, EstimateStatus, WorkloadSpec
from energaizer_operator.pod_workload import (
    ANNOTATION_WORKLOAD,
    job_spec,
    parse_workload,
    pod_gpus,
    workload_key,
)

logger = logging.getLogger("energaizer_operator.extender")

MAX_SCORE = 10
CACHE_SIZE = 8192
# Per cache (parsed annotations, verdicts): an annotation may be 256 KiB and its parse holds several times that,
# so 8,192 large distinct ones could hold gigabytes; both caches together stay at 64 MiB, well inside the chart's
# 512 Mi limit next to the largest body the server decodes (48 MiB, ~340 MB resident).
CACHE_BYTES = 32 * 1024 * 1024
ENTRY_OVERHEAD_BYTES = 100  # the OrderedDict's node and the key tuple's share of a hash table slot
K = TypeVar("K")
V = TypeVar("V")
_SHARED = (type(None), bool, int, float)


def deep_size(obj: Any) -> int:
    """Bytes held by ``obj`` and what it references: strings, numbers, containers, dataclasses and pydantic
    models (whose field names, shared with the class, are not counted); anything else counts its own size."""
    seen: set[int] = set()
    stack = [obj]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, (str, bytes, *_SHARED)):
            continue
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif isinstance(o, BaseModel):
            total += sys.getsizeof(o.__dict__) + sys.getsizeof(o.__pydantic_fields_set__)
            stack.extend(o.__dict__.values())
        elif isinstance(getattr(o, "__dict__", None), dict) and hasattr(o, "__dataclass_fields__"):
            total += sys.getsizeof(o.__dict__)
            stack.extend(o.__dict__.values())
    return total


class LRU(Generic[K, V]):
    """A mapping bounded by entries (``size``) and by bytes (``max_bytes``, as ``cost(key, value)`` counts
    them) that forgets the least recently used entries first (thread-safe). An entry costing more than the
    whole budget is not kept."""

    def __init__(
        self,
        size: int,
        max_bytes: int | None = None,
        cost: Callable[[K, V], int] | None = None,
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._cost = cost or (lambda key, value: deep_size((key, value)) + ENTRY_OVERHEAD_BYTES)
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            self._data.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> None:
        cost = self._cost(key, value) if self.max_bytes is not None else 0
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if self.max_bytes is not None and cost > self.max_bytes:
                return
            self._data[key] = (value, cost)
            self.bytes += cost
            while len(self._data) > self.size or (self.max_bytes is not None and self.bytes > self.max_bytes):
                self.bytes -= self._data.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class PodWork:
    """What a pod asks for: its workload key, the workload, its GPUs per pod and the AIJob spec they make
    (checked once, when the pod's annotation is first parsed)."""

    key: str
    workload: WorkloadSpec
    gpus: int
    spec: AIJobSpec


@dataclass(frozen=True)
class Rejected:
    """A malformed annotation's error, kept as text: a cached exception object would keep the traceback of
    its last raise, whose frames hold that request (its whole NodeList), and every re-raise would add to it."""

    field: str
    message: str

    def error(self) -> InvalidInputError:
        return InvalidInputError(self.field, self.message)


class BadRequest(ValueError):
    """The request body is not kube-scheduler's ExtenderArgs (answered with HTTP 400)."""


class Scorer:
    def __init__(
        self,
        *,
        product_label: str = "nvidia.com/gpu.product",
        gpu_resource: str = "nvidia.com/gpu",
        product_map: Mapping[str, str] | None = None,
        profile: str | None = None,
        cache_size: int = CACHE_SIZE,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.product_label = product_label
        self.gpu_resource = gpu_resource
        self.product_map = dict(product_map or {})
        self.profile = profile
        self.verdicts: LRU[tuple[str, str], EstimateStatus] = LRU(cache_size, cache_bytes)
        self.works: LRU[tuple[str, int], PodWork | Rejected] = LRU(cache_size, cache_bytes)
        self._types: dict[str, tuple[str | None, str]] = {}
        self.estimator_runs = 0

    # ------------------------------------------------------------------------------------ inputs

    def gpu_type_of_product(self, product: str | None) -> str | None:
        if not product:
            return None
        known = self._types.get(product)
        if known is None:
            known = resolve_gpu_type(product, self.product_map)
            if known[0] is not None:
                from energaizer.catalog import get_gpu

                try:
                    get_gpu(known[0])
                except (KeyError, ValueError):  # a product map entry naming no catalog GPU
                    known = (None, f"{known[0]!r} is not a catalog GPU id")
            if known[0] is None:
                logger.warning("nodes with GPU product %r are scored 0: %s", product, known[1])
            self._types[product] = known
        return known[0]

    def gpu_type_of_node(self, node: Mapping[str, Any]) -> str | None:
        """``BadRequest`` when the product label is not a string (label values are; the other labels are not
        read, so not checked: 5,000 nodes x 50 labels took 70 ms)."""
        labels = (node.get("metadata") or {}).get("labels") or {}
        product = labels.get(self.product_label)
        if product is not None and not isinstance(product, str):
            raise BadRequest(f"node {node['metadata']['name']}: label {self.product_label}: must be a string")
        return self.gpu_type_of_product(product)

    def pod_work(self, pod: Mapping[str, Any]) -> PodWork | None:
        """The pod's stated work, None without the annotation or GPUs; ``InvalidInputError`` when the
        annotation is malformed (remembered, so a bad pod costs one parse). Both are cached by the annotation's
        text, in :attr:`works` (LRU bounded by entries and bytes)."""
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        text = annotations.get(ANNOTATION_WORKLOAD) if isinstance(annotations, Mapping) else None
        if text is None:
            return None
        spec = pod.get("spec") or {}
        gpus = pod_gpus(spec, self.gpu_resource) if isinstance(spec, Mapping) else 0
        if gpus <= 0:
            return None
        if not isinstance(text, str):
            raise InvalidInputError(ANNOTATION_WORKLOAD, "must be a string")
        cached = self.works.get((text, gpus))
        if cached is None:
            try:
                workload = parse_workload(text)
                # the estimator's checks at this pod's GPUs, before any estimate
                cached = PodWork(workload_key(workload, gpus), workload, gpus, job_spec(workload, gpus))
            except InvalidInputError as exc:
                cached = Rejected(exc.field, str(exc)[len(exc.field) + 2 :])
            self.works.put((text, gpus), cached)
        if isinstance(cached, Rejected):
            raise cached.error()
        return cached

    # --------------------------------------------------------------------------------- estimates

    def verdicts_for(self, work: PodWork, gpu_types: Iterable[str]) -> dict[str, EstimateStatus]:
        """Estimates per GPU type; the estimator runs once, vectorised, for the types not cached yet."""
        out: dict[str, EstimateStatus] = {}
        missing: list[str] = []
        for gpu_type in gpu_types:
            if gpu_type in out:
                continue
            verdict = self.verdicts.get((work.key, gpu_type))
            if verdict is None:
                missing.append(gpu_type)
            else:
                out[gpu_type] = verdict
        if missing:
            missing = sorted(set(missing))
            self.estimator_runs += 1
            try:
                estimates = estimate_job(work.spec, missing, self.profile)
            except InvalidInputError as exc:
                raise InvalidInputError(ANNOTATION_WORKLOAD, str(exc)) from None
            for est in estimates:
                self.verdicts.put((work.key, est.gpu_type), est)
                out[est.gpu_type] = est
        return out

    def type_scores(self, verdicts: Mapping[str, EstimateStatus]) -> dict[str, int]:
        energies = {t: v.energy_joules for t, v in verdicts.items() if v.feasible and v.energy_joules > 0}
        if not energies:
            return dict.fromkeys(verdicts, 0)
        best = min(energies.values())
        scores: dict[str, int] = {}
        for gpu_type in verdicts:
            energy = energies.get(gpu_type)
            if energy is None:
                scores[gpu_type] = 0
            elif energy <= best * (1 + 1e-9):
                scores[gpu_type] = MAX_SCORE
            else:
                scores[gpu_type] = max(0, min(MAX_SCORE - 1, round(MAX_SCORE * best / energy)))
        return scores

    # ---------------------------------------------------------------------------------- requests

    def prioritize(self, pod: Mapping[str, Any], nodes: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """HostPriorityList for ``nodes`` (node name -> GPU type or None)."""
        work = self.pod_work(pod)
        if work is None:
            return [{"Host": name, "Score": 0} for name in nodes]
        verdicts = self.verdicts_for(work, {t for t in nodes.values() if t})
        scores = self.type_scores(verdicts)
        return [{"Host": name, "Score": scores.get(t, 0) if t else 0} for name, t in nodes.items()]

    def filter(
        self, pod: Mapping[str, Any], nodes: Mapping[str, str | None]
    ) -> tuple[list[str], dict[str, str]]:
        """(names that pass, name -> why not) for ``nodes``; nodes of unknown type pass."""
        work = self.pod_work(pod)
        if work is None:
            return list(nodes), {}
        verdicts = self.verdicts_for(work, {t for t in nodes.values() if t})
        passed: list[str] = []
        failed: dict[str, str] = {}
        for name, gpu_type in nodes.items():
            verdict = verdicts.get(gpu_type) if gpu_type else None
            if verdict is None or verdict.feasible:
                passed.append(name)
            else:
                failed[name] = f"energaizer: cannot run on {gpu_type} ({work.gpus} GPU/pod): {verdict.reason}"
        return passed, failed


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{where}: must be an object")
    return value


def _check_pod(pod: Any) -> Mapping[str, Any]:
    """The parts of the Pod the extender reads have the shapes of a v1.Pod."""
    if not isinstance(pod, Mapping):
        raise BadRequest("Pod: missing or not an object")
    meta = _object(pod.get("metadata"), "Pod.metadata")
    _object(meta.get("annotations"), "Pod.metadata.annotations")
    spec = _object(pod.get("spec"), "Pod.spec")
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise BadRequest(f"Pod.spec.{key}: must be a list")
        for i, container in enumerate(containers):
            entry = _object(container, f"Pod.spec.{key}[{i}]")
            resources = _object(entry.get("resources"), f"Pod.spec.{key}[{i}].resources")
            for part in ("limits", "requests"):
                _object(resources.get(part), f"Pod.spec.{key}[{i}].resources.{part}")
    return pod


def parse_args(body: Any) -> tuple[Mapping[str, Any], list[Mapping[str, Any]] | None, list[str] | None]:
    """ExtenderArgs -> (pod, node objects or None, node names or None); ``BadRequest`` when malformed."""
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object (kube-scheduler ExtenderArgs)")
    pod = _check_pod(body.get("Pod"))
    nodes = body.get("Nodes")
    names = body.get("NodeNames")
    if nodes is not None:
        items = _object(nodes, "Nodes").get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise BadRequest("Nodes.items: must be a list of Node objects")
        for i, node in enumerate(items):
            meta = _object(_object(node, f"Nodes.items[{i}]").get("metadata"), f"Nodes.items[{i}].metadata")
            if not isinstance(meta.get("name"), str):
                raise BadRequest(f"Nodes.items[{i}].metadata.name: missing")
            _object(meta.get("labels"), f"Nodes.items[{i}].metadata.labels")
        return pod, items, None
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest("NodeNames: must be a list of strings")
        return pod, None, names
    raise BadRequest("give Nodes or NodeNames")
