"""One placement batch: when to decide it, and pending AIJobs x present GPU types -> decisions.

Pure (no Kubernetes, no clock of its own): :func:`batch_due` decides from the times the caller
passes in (the placer's injectable clock), :func:`decide` from the cached estimates
(``status.estimates``) and the free capacity; the optimiser is the shared
:func:`energaizer.placement.solve`, with a time limit generous enough that a loaded machine does
not change its answer for the batches an operator sees (hundreds of jobs x a few types).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from energaizer.placement import PlacementProblem, PlacementResult, objective_matrix, solve
from energaizer_operator.inventory import Capacity

SOLVER_TIME_LIMIT_S = 5.0


@dataclass(frozen=True)
class BatchTiming:
    """When a burst is complete enough to place.

    ``quiet_seconds``: no new AIJob for this long (the batching window); ``max_delay_seconds``: the
    oldest estimated job never waits longer than this, whatever keeps arriving."""

    quiet_seconds: float
    max_delay_seconds: float


def batch_due(
    *,
    ready_since: Sequence[float],
    last_arrival: float | None,
    backlog: int,
    now: float,
    timing: BatchTiming,
) -> bool:
    """Place the estimated jobs now? Burst-aware: never while AIJobs are still to be estimated
    (``backlog``) or while they keep arriving (``last_arrival`` within the quiet window), unless the
    oldest of them (``ready_since``: when each became ready to place) has waited ``max_delay``.
    All times come from one clock (the caller's)."""
    if not ready_since:
        return False
    if now - min(ready_since) >= timing.max_delay_seconds:
        return True
    if backlog:
        return False
    return last_arrival is None or now - last_arrival >= timing.quiet_seconds


@dataclass(frozen=True)
class TypeEstimate:
    energy_joules: float
    duration_seconds: float
    average_power_watts: float
    feasible: bool
    reason: str = ""


@dataclass(frozen=True)
class PendingJob:
    """An Estimated (or Unschedulable) AIJob waiting for a placement."""

    key: str  # "namespace/name"
    uid: str
    demand: int  # replicas x gpusPerReplica
    gpus_per_replica: int
    objective: str
    estimates: Mapping[str, TypeEstimate]


@dataclass(frozen=True)
class Decision:
    job: PendingJob
    gpu_type: str | None  # None = unschedulable
    reason: str
    predicted_energy_joules: float = 0.0
    predicted_duration_seconds: float = 0.0
    savings_joules: float = 0.0


def build_problem(jobs: Sequence[PendingJob], capacity: Capacity) -> PlacementProblem:
    """Cost (J, T) from each job's own objective; a type is infeasible for a job when it was not
    estimated, is infeasible (memory, deadline), or no node has ``gpusPerReplica`` free GPUs."""
    types = capacity.types
    n_jobs, n_types = len(jobs), len(types)
    energy = np.full((n_jobs, n_types), np.inf)
    duration = np.full((n_jobs, n_types), np.inf)
    reasons = [[""] * n_types for _ in range(n_jobs)]
    largest = np.array([capacity.largest_free_node.get(t, 0) for t in types], dtype=float)
    gpr = np.array([job.gpus_per_replica for job in jobs], dtype=float)
    for j, job in enumerate(jobs):
        row = reasons[j]
        for t, gpu_type in enumerate(types):
            est = job.estimates.get(gpu_type)
            if est is None:
                row[t] = "not a candidate"
            elif not est.feasible:
                row[t] = est.reason or "infeasible"
            else:
                energy[j, t] = est.energy_joules
                duration[j, t] = est.duration_seconds
    if n_types:
        too_big = (gpr[:, None] > largest[None, :]) & np.isfinite(energy)
        for j, t in zip(*np.nonzero(too_big), strict=True):
            reasons[j][t] = f"no node has {int(gpr[j])} free GPUs"
        energy[too_big] = np.inf
    cost = np.full((n_jobs, n_types), np.inf)
    objectives = np.array([job.objective for job in jobs])
    for objective in set(objectives.tolist()):
        rows = objectives == objective
        cost[rows] = objective_matrix(energy[rows], duration[rows], objective)
    return PlacementProblem(
        job_ids=[job.key for job in jobs],
        type_ids=types,
        cost=cost,
        demand=np.array([job.demand for job in jobs], dtype=float),
        capacity=np.array([capacity.free.get(t, 0) for t in types], dtype=float),
        infeasible_reasons=reasons,
    )


def decide(
    jobs: Sequence[PendingJob], capacity: Capacity, *, time_limit_s: float = SOLVER_TIME_LIMIT_S
) -> tuple[list[Decision], PlacementResult]:
    problem = build_problem(jobs, capacity)
    result = solve(problem, time_limit_s=time_limit_s)
    decisions: list[Decision] = []
    for j, job in enumerate(jobs):
        t = int(result.assignment[j])
        if t < 0:
            fallback = "no GPU type present in the cluster" if not capacity.types else "not placed"
            decisions.append(Decision(job, None, result.reasons[j] or fallback))
            continue
        gpu_type = problem.type_ids[t]
        est = job.estimates[gpu_type]
        worst = max(
            (e.energy_joules for e in job.estimates.values() if e.feasible), default=est.energy_joules
        )
        decisions.append(
            Decision(
                job,
                gpu_type,
                "",
                predicted_energy_joules=est.energy_joules,
                predicted_duration_seconds=est.duration_seconds,
                savings_joules=max(0.0, worst - est.energy_joules),
            )
        )
    return decisions, result
