"""Estimate an AIJob on its candidate GPU types and turn the result into ``status.estimates``.

One vectorised ``energaizer.estimate_matrix`` call per AIJob: the workload of ONE replica on
``gpusPerReplica`` GPUs; replicas run in parallel, so the job's energy and power are ``replicas``
times a replica's and its duration is a replica's. A deadline makes slower types infeasible.
"""

from __future__ import annotations

from collections.abc import Sequence

from energaizer.errors import InvalidInputError
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


def estimate_job(
    spec: AIJobSpec, gpu_types: Sequence[str], profile: str | None = None
) -> list[EstimateStatus]:
    """Estimates for the whole AIJob (all replicas) on each type, in ``gpu_types`` order."""
    from energaizer import estimate_matrix

    if not gpu_types:
        return []
    batch = estimate_matrix([spec.to_workload()], list(gpu_types), profile=profile)
    replicas = spec.resources.replicas
    deadline = spec.placement.deadline_seconds
    out: list[EstimateStatus] = []
    for i, gpu_type in enumerate(gpu_types):
        feasible = bool(batch.feasible[i])
        reason = batch.reason[i] if not feasible else ""
        duration = float(batch.duration_seconds[i])
        if feasible and deadline is not None and duration > deadline:
            feasible = False
            reason = f"misses the deadline: {duration:.0f} s > {deadline:.0f} s"
        out.append(
            EstimateStatus(
                gpu_type=gpu_type,
                energy_joules=float(batch.energy_joules[i]) * replicas,
                duration_seconds=duration,
                average_power_watts=float(batch.average_power_watts[i]) * replicas,
                feasible=feasible,
                reason=reason,
            )
        )
    return out
