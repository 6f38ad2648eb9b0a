"""Estimate AIJobs on their candidate GPU types and turn the results into ``status.estimates``.

A batch of AIJobs is ONE vectorised estimator call (``energaizer.estimate_pairs``: every (job,
candidate type) pair at once; :func:`estimate_many`). Each job's workload is ONE replica on
``gpusPerReplica`` GPUs; replicas run in parallel, so the job's energy and power are ``replicas``
times a replica's and its duration is a replica's. A deadline makes slower types infeasible.
Numbers of infeasible types are ``None`` (null on the wire): JSON has no NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    (the range in their reason); outside every candidate's it is the job's ``InvalidInputError``. A job
    the estimator rejects gets its ``InvalidInputError`` in its slot; the batch is split in halves until
    the others are estimated."""
    from energaizer.catalog import get_gpu
    from energaizer.io.layout import check_knobs_on_any

    rejected: dict[int, InvalidInputError] = {}
    ok: list[tuple[AIJobSpec, Sequence[str], Workload]] = []
    for j, (spec, types) in enumerate(jobs):
        workload = spec.to_workload()
        try:
            if workload.frequency_mhz is not None or workload.power_limit_w is not None:
                check_knobs_on_any(workload, [get_gpu(t) for t in types])
        except InvalidInputError as exc:
            rejected[j] = exc
        else:
            ok.append((spec, types, workload))
    estimated = iter(_estimate_batch(ok, profile))
    return [rejected[j] if j in rejected else next(estimated) for j in range(len(jobs))]


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
