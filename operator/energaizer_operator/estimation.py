"""Estimate AIJobs on their candidate GPU types and turn the results into ``status.estimates``.

A batch of AIJobs is ONE vectorised estimator call (``energaizer.estimate_pairs``: every (job,
candidate type) pair at once; :func:`estimate_many`). Each job's workload is ONE replica on
``gpusPerReplica`` GPUs; replicas run in parallel, so the job's energy and power are ``replicas``
times a replica's and its duration is a replica's. A deadline makes slower types infeasible.
Numbers of infeasible types are ``None`` (null on the wire): JSON has no NaN.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from energaizer.errors import InvalidInputError
from energaizer.result import EstimateBatch
from energaizer.workload import Workload
from energaizer_operator.models import AIJobSpec, EstimateStatus


def candidate_types(spec: AIJobSpec, present: Sequence[str]) -> list[str]:
    """The AIJob's candidate GPU types (catalog ids): ``candidateGpuTypes`` resolved, else every type
    present in the cluster. Unknown names raise ``InvalidInputError`` naming the field."""
    if not spec.placement.candidate_gpu_types:
        return sorted(present)
    from energaizer.catalog import get_gpu, list_gpus

    out: list[str] = []
    for name in spec.placement.candidate_gpu_types:
        try:
            gpu_id = get_gpu(name).id
        except (KeyError, ValueError):
            raise InvalidInputError(
                "spec.placement.candidateGpuTypes", f"unknown GPU type {name!r}", [g.id for g in list_gpus()]
            ) from None
        if gpu_id not in out:
            out.append(gpu_id)
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _statuses(
    spec: AIJobSpec, gpu_types: Sequence[str], batch: EstimateBatch, offset: int
) -> list[EstimateStatus]:
    replicas = spec.resources.replicas
    deadline = spec.placement.deadline_seconds
    out: list[EstimateStatus] = []
    for i, gpu_type in enumerate(gpu_types):
        row = offset + i
        feasible = bool(batch.feasible[row])
        reason = str(batch.reason[row]) if not feasible else ""
        energy = float(batch.energy_joules[row]) * replicas
        duration = float(batch.duration_seconds[row])
        power = float(batch.average_power_watts[row]) * replicas
        if feasible and not (math.isfinite(energy) and math.isfinite(duration)):
            feasible, reason = False, reason or "no finite prediction"
        if feasible and deadline is not None and duration > deadline:
            feasible = False
            reason = f"misses the deadline: {duration:.0f} s > {deadline:.0f} s"
        out.append(
            EstimateStatus(
                gpu_type=gpu_type,
                energy_joules=_finite(energy) if feasible else None,
                duration_seconds=_finite(duration) if feasible else None,
                average_power_watts=_finite(power) if feasible else None,
                feasible=feasible,
                reason=reason,
            )
        )
    return out


def estimate_many(
    jobs: Sequence[tuple[AIJobSpec, Sequence[str]]], profile: str | None = None
) -> list[list[EstimateStatus] | InvalidInputError]:
    """Estimates for many AIJobs (each on its own candidate types) in one vectorised call.

    A what-if clock or power limit outside some candidate types' ranges makes those types infeasible
    (the range in their reason). Outside every candidate's it is the job's ``InvalidInputError`` when
    the candidates are ``candidateGpuTypes`` or no catalog type takes it; when they are the types present
    and some catalog type takes it (a node of it may join, e.g. an elastic pool scaled to zero), every
    type is infeasible, its reason naming the knob and the types it fits (the AIJob is Unschedulable until
    one joins; see :func:`types_joined`). A job the estimator rejects gets its ``InvalidInputError`` in its
    slot; the batch is split in halves until the others are estimated."""
    from energaizer.catalog import get_gpu
    from energaizer.io.layout import check_knobs_on_any

    rejected: dict[int, InvalidInputError] = {}
    absent: dict[int, str] = {}  # job -> what its knob fits (types not present)
    ok: list[tuple[AIJobSpec, Sequence[str], Workload]] = []
    for j, (spec, types) in enumerate(jobs):
        workload = spec.to_workload()
        try:
            if workload.frequency_mhz is not None or workload.power_limit_w is not None:
                check_knobs_on_any(workload, [get_gpu(t) for t in types])
        except InvalidInputError as exc:
            fits = _fits_elsewhere(spec, workload, exc, types)
            if fits is None:
                rejected[j] = exc
                continue
            absent[len(ok)] = fits
        ok.append((spec, types, workload))
    estimated = _estimate_batch(ok, profile)
    for k, fits in absent.items():
        result = estimated[k]
        if not isinstance(result, InvalidInputError):
            estimated[k] = [e.model_copy(update={"reason": f"{e.reason}; {fits}"}) for e in result]
    found = iter(estimated)
    return [rejected[j] if j in rejected else next(found) for j in range(len(jobs))]


KNOB_FIELDS = {"frequency_mhz": "spec.workload.frequencyMhz", "power_limit_w": "spec.workload.powerLimitW"}


def _fits_elsewhere(
    spec: AIJobSpec, workload: Workload, exc: InvalidInputError, types: Sequence[str]
) -> str | None:
    """For a knob outside every type present (no ``candidateGpuTypes``): what it fits among the catalog's
    other types, e.g. ``spec.workload.powerLimitW 900 W fits b200, gb200 (none present)``; None when the
    candidates were named, or no catalog type takes it (bad input)."""
    from energaizer.catalog import list_gpus
    from energaizer.io.layout import check_knobs

    if spec.placement.candidate_gpu_types or exc.field not in KNOB_FIELDS:
        return None
    fits = []
    for gpu in list_gpus():
        if gpu.id in types:
            continue
        try:
            check_knobs(workload, gpu)
        except InvalidInputError:
            continue
        fits.append(gpu.id)
    if not fits:
        return None
    value = workload.frequency_mhz if exc.field == "frequency_mhz" else workload.power_limit_w
    unit = "MHz" if exc.field == "frequency_mhz" else "W"
    return f"{KNOB_FIELDS[exc.field]} {value:g} {unit} fits {', '.join(sorted(fits))} (none present)"


def types_joined(spec: AIJobSpec | None, estimated: Collection[str], present: Collection[str]) -> bool:
    """An AIJob estimated on every type present (no ``candidateGpuTypes``) whose estimates lack a type
    present now: a node of a new type joined since, and the AIJob is to be estimated on it too."""
    if spec is None or spec.placement.candidate_gpu_types:
        return False
    return bool(set(present) - set(estimated))


def _estimate_batch(
    jobs: Sequence[tuple[AIJobSpec, Sequence[str], Workload]], profile: str | None
) -> list[list[EstimateStatus] | InvalidInputError]:
    from energaizer import estimate_pairs

    if not jobs:
        return []
    workloads, gpus = [], []
    for _, types, workload in jobs:
        workloads.extend([workload] * len(types))
        gpus.extend(types)
    try:
        batch = estimate_pairs(workloads, gpus, profile=profile, strict_knobs=False)
    except InvalidInputError as exc:
        if len(jobs) == 1:
            return [exc]
        half = len(jobs) // 2
        return _estimate_batch(jobs[:half], profile) + _estimate_batch(jobs[half:], profile)
    out: list[list[EstimateStatus] | InvalidInputError] = []
    offset = 0
    for spec, types, _ in jobs:
        out.append(_statuses(spec, types, batch, offset))
        offset += len(types)
    return out


def estimate_job(
    spec: AIJobSpec, gpu_types: Sequence[str], profile: str | None = None
) -> list[EstimateStatus]:
    """Estimates for the whole AIJob (all replicas) on each type, in ``gpu_types`` order."""
    result = estimate_many([(spec, gpu_types)], profile)[0]
    if isinstance(result, InvalidInputError):
        raise result
    return result
