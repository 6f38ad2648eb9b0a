"""What the AIJob index keeps per object: the spec parsed once, the status the operator needs.

The index handler builds one :class:`AIJobRecord` per watch event; the spec is validated with the
pydantic models once per ``(uid, generation)`` (a status change does not re-parse it). Everything
downstream (estimation, placement, steering) reads the parsed :class:`AIJobSpec`, never raw dicts.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from energaizer.catalog import get_model
from energaizer.errors import InvalidInputError, pydantic_location, pydantic_message
from energaizer.io.layout import check_layout
from energaizer_operator.batch import PendingJob, TypeEstimate
from energaizer_operator.constants import API_VERSION, KIND
from energaizer_operator.models import TERMINAL_PHASES, AIJobSpec, Phase
from energaizer_operator.steering import check_template


@dataclass(frozen=True)
class SpecError:
    field: str  # e.g. "spec.workload.inference.requests"
    message: str  # starts with the field path


@dataclass(frozen=True)
class AIJobRecord:
    namespace: str
    name: str
    uid: str
    generation: int | None
    phase: Phase | None
    observed_generation: int | None
    spec: AIJobSpec | None  # None when the spec is invalid (then ``spec_error`` says why)
    spec_error: SpecError | None = None
    estimates: Mapping[str, TypeEstimate] = field(default_factory=dict)
    conditions: tuple[Mapping[str, Any], ...] = ()
    placed_gpu_type: str | None = None  # status.placement.gpuType
    placed_job_name: str | None = None  # status.placement.jobName (steer mode: its Job was created)
    resource_version: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def up_to_date(self) -> bool:
        """Handled for the current spec (``observedGeneration`` == ``generation``)."""
        return self.generation is None or self.observed_generation == self.generation

    @property
    def needs_estimate(self) -> bool:
        """No phase yet, or a spec the operator has not handled: level-triggered, whatever kopf saw."""
        if self.phase is None:
            return True
        return not self.up_to_date and self.phase not in (Phase.SUCCEEDED, Phase.FAILED)

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES and self.up_to_date

    def written(self, body: Mapping[str, Any]) -> AIJobRecord:
        """This record at the version an API write of the AIJob returned (``body``: its resourceVersion and
        conditions), so that a conditions write that follows our own write is built on it and does not
        conflict with it (a 409 and a re-read for every placed AIJob otherwise)."""
        version, conditions = version_and_conditions(body)
        if not version:
            return self
        return replace(self, resource_version=str(version), conditions=conditions)

    @property
    def ref(self) -> dict[str, Any]:
        """A minimal body for owner references and events."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid, "labels": {}},
        }

    def pending_job(
        self, default_objective: str, default_max_wait_seconds: float = 0.0, waited_seconds: float = 0.0
    ) -> PendingJob:
        assert self.spec is not None
        resources = self.spec.resources
        placement = self.spec.placement
        objective = placement.objective or default_objective
        max_wait = placement.max_wait_seconds
        return PendingJob(
            self.key,
            self.uid,
            resources.gpus_per_replica * resources.replicas,
            resources.gpus_per_replica,
            objective,
            self.estimates,
            max_wait_seconds=default_max_wait_seconds if max_wait is None else max_wait,
            waited_seconds=waited_seconds,
            deadline_seconds=placement.deadline_seconds,
        )

    def mode(self, default_mode: str) -> str:
        return (self.spec.placement.mode if self.spec else None) or default_mode

    def condition_reason(self, type_: str) -> str | None:
        for cond in self.conditions:
            if cond.get("type") == type_:
                return str(cond.get("reason", ""))
        return None

    def condition_message(self, type_: str) -> str | None:
        for cond in self.conditions:
            if cond.get("type") == type_:
                return str(cond.get("message", ""))
        return None


def _crd_path(fields: list[str]) -> str:
    """A field of the estimator's workload (snake_case) as the AIJob spells it."""
    if fields == ["gpu_count"]:
        return "spec.resources.gpusPerReplica"
    return ".".join(["spec.workload", *(to_camel(part) for part in fields)])


def describe_spec_error(exc: Exception) -> SpecError:
    """The field path and a message starting with it, for a bad spec."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = pydantic_location(err)
        # the estimator's own model, or the AIJob's (already camelCase)
        path = _crd_path(loc) if exc.title == "Workload" else ".".join(["spec", *loc])
        return SpecError(path, f"{path}: {pydantic_message(err)}")
    if isinstance(exc, InvalidInputError):
        if exc.field.startswith("spec."):
            return SpecError(exc.field, str(exc))
        path = _crd_path(exc.field.split("."))
        return SpecError(path, f"{path}: {str(exc).removeprefix(exc.field + ': ')}")
    return SpecError("spec", str(exc))


def parse_spec(raw: Mapping[str, Any], default_mode: str) -> tuple[AIJobSpec | None, SpecError | None]:
    """Validate a raw ``spec``: the models, then what the estimator's own model checks, then (steer
    mode) the pod template."""
    try:
        spec = AIJobSpec.model_validate(dict(raw))
        workload = spec.to_workload()  # the estimator's own checks raise here, not mid-batch
        if workload.model is not None:
            get_model(workload.model)  # unknown names: spec.workload.model
        check_layout(workload)  # a layout the heads cannot be split by, as the CLI and CSV reader check
        if (spec.placement.mode or default_mode) == "steer":
            check_template(spec.template)
    except (ValidationError, InvalidInputError) as exc:
        return None, describe_spec_error(exc)
    return spec, None


class SpecCache:
    """Parsed specs by (uid, generation, default mode): a spec is validated once per generation."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], tuple[AIJobSpec | None, SpecError | None]] = OrderedDict()

    def parse(
        self, uid: str, generation: int | None, raw: Mapping[str, Any], default_mode: str
    ) -> tuple[AIJobSpec | None, SpecError | None]:
        if generation is None:  # no generation from the server: cannot tell specs apart
            return parse_spec(raw, default_mode)
        key = (uid, generation, default_mode)
        hit = self._items.get(key)
        if hit is None:
            hit = self._items[key] = parse_spec(raw, default_mode)
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return hit


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _estimate(e: Mapping[str, Any]) -> TypeEstimate:
    energy, duration = _number(e.get("energyJoules")), _number(e.get("durationSeconds"))
    feasible = bool(e.get("feasible")) and energy is not None and duration is not None
    return TypeEstimate(
        energy if energy is not None else math.inf,
        duration if duration is not None else math.inf,
        _number(e.get("averagePowerWatts")) or 0.0,
        feasible,
        str(e.get("reason") or ""),
    )


def _phase(value: Any) -> Phase | None:
    try:
        return Phase(value) if value else None
    except ValueError:
        return None


def version_and_conditions(body: Mapping[str, Any]) -> tuple[str | None, tuple[Mapping[str, Any], ...]]:
    """An AIJob's ``resourceVersion`` and ``status.conditions``, as a watch, a read or a write returned it:
    what a conditions write is built on."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return version, tuple(c for c in conditions or [] if isinstance(c, Mapping))


def aijob_record(body: Mapping[str, Any], cache: SpecCache, default_mode: str) -> AIJobRecord:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    version, conditions = version_and_conditions(body)
    uid, generation = meta.get("uid", ""), meta.get("generation")
    spec, error = cache.parse(uid, generation, body.get("spec") or {}, default_mode)
    estimates = {
        e["gpuType"]: _estimate(e)
        for e in status.get("estimates") or []
        if isinstance(e, Mapping) and e.get("gpuType")
    }
    placement = status.get("placement") or {}
    return AIJobRecord(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=uid,
        generation=generation,
        phase=_phase(status.get("phase")),
        observed_generation=status.get("observedGeneration"),
        spec=spec,
        spec_error=error,
        estimates=estimates,
        conditions=conditions,
        placed_gpu_type=placement.get("gpuType") if isinstance(placement, Mapping) else None,
        placed_job_name=placement.get("jobName") if isinstance(placement, Mapping) else None,
        resource_version=version,
    )
