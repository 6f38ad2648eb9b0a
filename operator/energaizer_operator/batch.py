"""One placement batch: when to decide it, and pending AIJobs x present GPU types -> decisions.

Pure (no Kubernetes, no clock of its own): :func:`batch_due` decides from the times the caller
passes in (the placer's injectable clock), :func:`decide` from the cached estimates
(``status.estimates``), the free capacity and how long each job has waited (``waited_seconds``,
from the same clock); the optimiser is the shared :func:`energaizer.placement.solve`, with a time
limit generous enough that a loaded machine does not change its answer for the batches an operator
sees (hundreds of jobs x a few types).

Bounded waiting (:func:`wait_allowance_seconds`): a job first considers only its preferred types,
those within :data:`WAIT_ENERGY_SLACK` of the cost of its best type present in the cluster (free
or not), and waits for one of them; once it has waited ``maxWaitSeconds`` every feasible type is
allowed and the optimiser picks the best free one. Deadlines win: a job with
``deadlineSeconds`` waits at most ``deadline - duration`` on its slowest preferred type.

Fleet mode (:class:`FleetSettings`): the cost of the ``energy`` and ``energy-delay`` objectives is
the marginal fleet energy of :func:`energaizer.placement.fleet.marginal_fleet_energy`, with each
type's idle power from the catalog.

Counterfactuals (:func:`plain_scheduler_order`): what a plain scheduler would have spent (the first
feasible type with room in the cluster's default order) and the worst feasible type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from energaizer.catalog import get_gpu
from energaizer.placement import (
    FleetMode,
    FleetModel,
    PlacementProblem,
    PlacementResult,
    counterfactual_energy,
    objective_matrix,
    solve,
)
from energaizer_operator.inventory import Capacity

SOLVER_TIME_LIMIT_S = 5.0
WAIT_ENERGY_SLACK = 0.05  # preferred types: cost within 5 % of the best present type (as `plan`)


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
    max_wait_seconds: float = 0.0  # spec.placement.maxWaitSeconds (or the setting)
    waited_seconds: float = 0.0  # since it became Estimated, on the placer's clock
    deadline_seconds: float | None = None


@dataclass(frozen=True)
class Wait:
    """A job that may still wait ``left_seconds`` for one of its preferred ``types``."""

    left_seconds: float
    types: tuple[str, ...]


@dataclass(frozen=True)
class FleetSettings:
    """``ENERGAIZER_FLEET_MODE`` and ``ENERGAIZER_FLEET_IDLE_TIMEOUT_SECONDS``."""

    mode: FleetMode
    idle_timeout_seconds: float

    def model(self, types: Sequence[str]) -> FleetModel:
        idle = np.array([get_gpu(t).idle_power_w for t in types], dtype=float)
        return FleetModel(self.mode, idle, self.idle_timeout_seconds)


@dataclass(frozen=True)
class Decision:
    job: PendingJob
    gpu_type: str | None  # None = not placed now (unschedulable, or waiting when ``waiting``)
    reason: str
    predicted_energy_joules: float = 0.0
    predicted_duration_seconds: float = 0.0
    savings_joules: float = 0.0  # against the worst feasible type (contract savingsJoules)
    waiting: bool = False  # waits for a preferred type (bounded by maxWaitSeconds)
    wait_left_seconds: float = 0.0  # when ``waiting``: until every feasible type is allowed
    plain_gpu_type: str | None = None  # the type a plain scheduler would have used
    plain_energy_joules: float | None = None
    worst_energy_joules: float | None = None
    savings_vs_plain_joules: float | None = None  # negative when the chosen type costs more


def wait_allowance_seconds(job: PendingJob, preferred_durations: Sequence[float]) -> float:
    """How long ``job`` may wait for one of its preferred types (whose durations are given):
    ``maxWaitSeconds``, shortened by a deadline so that the slowest preferred type still meets it."""
    allowance = max(0.0, job.max_wait_seconds)
    if job.deadline_seconds is not None and preferred_durations:
        allowance = min(allowance, max(0.0, job.deadline_seconds - max(preferred_durations)))
    return allowance


def plain_scheduler_order(capacity: Capacity) -> list[str]:
    """The cluster's default order of GPU types for a plain (energy-blind) scheduler: most free GPUs
    first, as kube-scheduler's default ``LeastAllocated`` scoring prefers the emptiest nodes; ties
    by type id."""
    return sorted(capacity.types, key=lambda t: (-capacity.free.get(t, 0), t))


def build_problem(
    jobs: Sequence[PendingJob], capacity: Capacity, fleet: FleetSettings | None = None
) -> tuple[PlacementProblem, np.ndarray]:
    """Cost (J, T) from each job's own objective (the fleet mode's marginal energy with ``fleet``);
    a type is infeasible for a job when it was not estimated, is infeasible (memory, deadline), no
    node has ``gpusPerReplica`` free GPUs, or the job still waits for a preferred type. Also
    returns, per job, how long it may still wait and for which types (None: every feasible type is
    allowed)."""
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
    demand = np.array([job.demand for job in jobs], dtype=float)
    cost = np.full((n_jobs, n_types), np.inf)
    objectives = np.array([job.objective for job in jobs])
    model = fleet.model(types) if fleet is not None and n_types else None
    for objective in set(objectives.tolist()):
        rows = objectives == objective
        cost[rows] = objective_matrix(
            energy[rows], duration[rows], objective, fleet=model, demand=demand[rows]
        )
    waits: list[Wait | None] = [None] * n_jobs
    for j, job in enumerate(jobs):
        row = cost[j]
        if not np.isfinite(row).any():
            continue
        best = float(row[np.isfinite(row)].min())
        preferred = np.isfinite(row) & (row <= best * (1.0 + WAIT_ENERGY_SLACK) + 1e-9)
        allowance = wait_allowance_seconds(job, duration[j, preferred].tolist())
        left = allowance - job.waited_seconds
        if left > 0 and not preferred.all():
            waits[j] = Wait(float(left), tuple(t for t, p in zip(types, preferred, strict=True) if p))
            for t in np.nonzero(np.isfinite(row) & ~preferred)[0]:
                reasons[j][t] = f"waiting up to {left:.0f} s more for {', '.join(waits[j].types)}"
            row[~preferred] = np.inf
    if n_types:
        too_big = (gpr[:, None] > largest[None, :]) & np.isfinite(cost)
        most = [
            max((capacity.node_gpus.get(p, 0) for p in capacity.products.get(t, [])), default=0)
            for t in types
        ]
        for j, t in zip(*np.nonzero(too_big), strict=True):
            if gpr[j] > most[t]:  # never, as the nodes are: not a matter of waiting for GPUs to free up
                reasons[j][t] = f"no {types[t]} node has {int(gpr[j])} GPUs (the largest has {most[t]})"
            else:
                reasons[j][t] = f"no node has {int(gpr[j])} free GPUs"
        cost[too_big] = np.inf
    problem = PlacementProblem(
        job_ids=[job.key for job in jobs],
        type_ids=types,
        cost=cost,
        demand=demand,
        capacity=np.array([capacity.free.get(t, 0) for t in types], dtype=float),
        infeasible_reasons=reasons,
    )
    return problem, waits


def decide(
    jobs: Sequence[PendingJob],
    capacity: Capacity,
    *,
    fleet: FleetSettings | None = None,
    time_limit_s: float = SOLVER_TIME_LIMIT_S,
) -> tuple[list[Decision], PlacementResult]:
    problem, waits = build_problem(jobs, capacity, fleet)
    result = solve(problem, time_limit_s=time_limit_s)
    order = plain_scheduler_order(capacity)
    decisions: list[Decision] = []
    for j, job in enumerate(jobs):
        t = int(result.assignment[j])
        if t < 0:
            wait = waits[j]
            if wait is not None:
                reason = (
                    f"waiting up to {wait.left_seconds:.0f} s more for {', '.join(wait.types)} "
                    f"(maxWaitSeconds {job.max_wait_seconds:.0f} s)"
                )
                decisions.append(
                    Decision(job, None, reason, waiting=True, wait_left_seconds=wait.left_seconds)
                )
                continue
            fallback = "no GPU type present in the cluster" if not capacity.types else "not placed"
            decisions.append(Decision(job, None, result.reasons[j] or fallback))
            continue
        gpu_type = problem.type_ids[t]
        est = job.estimates[gpu_type]
        room = {
            tp: capacity.free.get(tp, 0)
            if capacity.largest_free_node.get(tp, 0) >= job.gpus_per_replica
            else 0
            for tp in capacity.types
        }
        cf = counterfactual_energy(
            {tp: e.energy_joules if e.feasible else None for tp, e in job.estimates.items() if tp in room},
            order,
            room,
            job.demand,
        )
        worst = cf.worst_energy_joules if cf is not None else est.energy_joules
        decisions.append(
            Decision(
                job,
                gpu_type,
                "",
                predicted_energy_joules=est.energy_joules,
                predicted_duration_seconds=est.duration_seconds,
                savings_joules=max(0.0, worst - est.energy_joules),
                plain_gpu_type=cf.plain_gpu_type if cf is not None else None,
                plain_energy_joules=cf.plain_energy_joules if cf is not None else None,
                worst_energy_joules=worst,
                savings_vs_plain_joules=cf.savings_joules(est.energy_joules)[0] if cf is not None else None,
            )
        )
    return decisions, result
