"""Exact solvers: a two-stage MILP (HiGHS via ``scipy.optimize.milp``), its LP relaxation, and
``linear_sum_assignment`` for unit demands.

MILP variables are the usable (job, type) pairs only. Stage 1 maximises the placed weight
(skipped when a heuristic already places every placeable job); stage 2 minimises total cost
subject to placing at least that weight. Costs are divided by the mean of each job's cheapest cost
(at least a billionth of the dearest pair) so that HiGHS, whose tolerances are absolute, sees a
typical job's cost of order one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from energaizer.placement.problem import PlacementProblem

if TYPE_CHECKING:
    from scipy.optimize import LinearConstraint
    from scipy.sparse import csr_matrix

# scipy.optimize is imported where a solver runs, not with this module: it takes ~0.45 s, and the
# operator and the CLI import the placement package at start while most batches are trivial (every job's
# cheapest type fits) and never call a solver.

SCALE_FLOOR = 1e-9  # the dearest pair is at most 1e9 after scaling


@dataclass
class _Model:
    jobs: np.ndarray  # (K,) job of each variable
    types: np.ndarray  # (K,) type of each variable
    cost: np.ndarray  # (K,) scaled cost
    scale: float
    per_job: csr_matrix  # (J, K)
    per_type: csr_matrix  # (T, K) demand-weighted


def _model(problem: PlacementProblem) -> _Model:
    from scipy.sparse import coo_matrix

    jobs, types = np.nonzero(problem.usable())
    cost = problem.cost[jobs, types]
    # HiGHS's tolerances are absolute: scale so that a typical job's cost, not the dearest pair, is
    # of order one (the mean of each job's cheapest cost), else one huge cost that no job takes
    # drowns every decision that matters; the floor keeps the dearest scaled cost at most 1e9
    cheapest = np.full(problem.n_jobs, np.inf)
    np.minimum.at(cheapest, jobs, cost)
    cheapest = cheapest[np.isfinite(cheapest)]
    typical = float(cheapest.mean()) if cheapest.size else 0.0
    scale = max(typical, float(cost.max(initial=0.0)) * SCALE_FLOOR)
    scale = scale if scale > 0 else 1.0
    k = jobs.size
    cols = np.arange(k)
    per_job = coo_matrix((np.ones(k), (jobs, cols)), shape=(problem.n_jobs, k)).tocsr()
    per_type = coo_matrix((problem.demand[jobs], (types, cols)), shape=(problem.n_types, k)).tocsr()
    return _Model(jobs, types, cost / scale, scale, per_job, per_type)


def n_variables(problem: PlacementProblem) -> int:
    return int(problem.usable().sum())


def _constraints(problem: PlacementProblem, m: _Model, min_weight: float | None) -> list[LinearConstraint]:
    from scipy.optimize import LinearConstraint
    from scipy.sparse import csr_matrix

    cons = [
        LinearConstraint(m.per_job, 0.0, 1.0),
        LinearConstraint(m.per_type, 0.0, problem.capacity),
    ]
    if min_weight is not None and min_weight > 0:
        w = problem.weights[m.jobs]
        # a small relative slack keeps a rounded optimum from being cut off
        cons.append(
            LinearConstraint(csr_matrix(w.reshape(1, -1)), min_weight - 1e-7 * max(1.0, min_weight), np.inf)
        )
    return cons


@dataclass
class MilpOutcome:
    assignment: np.ndarray | None
    optimal: bool
    placed_weight_bound: float | None  # best known placed weight (stage 1) when it ran


def solve_milp(
    problem: PlacementProblem,
    *,
    time_limit_s: float,
    mip_rel_gap: float,
    min_weight: float | None = None,
    known_weight: float | None = None,
) -> MilpOutcome:
    """Exact lexicographic solve. ``min_weight`` (when known, e.g. every placeable job fits) skips
    stage 1, and so does ``known_weight`` (the weight some feasible assignment places) when the LP
    relaxation proves no integral assignment places more. Returns the incumbent (or None) and
    whether it is proven optimal within the gap."""
    import time

    from scipy.optimize import Bounds, milp

    start = time.perf_counter()
    m = _model(problem)
    if m.jobs.size == 0:
        return MilpOutcome(np.full(problem.n_jobs, -1, dtype=np.int64), True, 0.0)
    k = m.jobs.size
    integrality = np.ones(k)
    bounds = Bounds(0.0, 1.0)
    stage1_optimal = True
    if (
        min_weight is None
        and known_weight is not None
        and _lp_max_weight_floor(problem, m) <= known_weight + 1e-9
    ):
        min_weight = known_weight
    if min_weight is None:
        w = problem.weights[m.jobs]
        res1 = milp(
            -w,
            integrality=integrality,
            bounds=bounds,
            constraints=_constraints(problem, m, None),
            options={"time_limit": max(time_limit_s / 2, 1e-3), "mip_rel_gap": 0.0, "presolve": True},
        )
        if res1.x is None:
            return MilpOutcome(None, False, None)
        stage1_optimal = res1.status == 0
        min_weight = float(w @ np.round(res1.x))
    remaining = max(time_limit_s - (time.perf_counter() - start), 1e-3)
    res2 = milp(
        m.cost,
        integrality=integrality,
        bounds=bounds,
        constraints=_constraints(problem, m, min_weight),
        options={"time_limit": remaining, "mip_rel_gap": mip_rel_gap, "presolve": True},
    )
    if res2.x is None:
        return MilpOutcome(None, False, min_weight)
    x = np.round(res2.x) > 0.5
    assignment = np.full(problem.n_jobs, -1, dtype=np.int64)
    assignment[m.jobs[x]] = m.types[x]
    return MilpOutcome(assignment, stage1_optimal and res2.status == 0, min_weight)


def _lp_max_weight_floor(problem: PlacementProblem, m: _Model) -> float:
    """Upper bound on the placed weight of an integral assignment (floored for integral weights)."""
    from scipy.optimize import linprog
    from scipy.sparse import vstack

    w = problem.weights[m.jobs]
    a_ub = vstack([m.per_job, m.per_type]).tocsr()
    b_ub = np.concatenate([np.ones(problem.n_jobs), problem.capacity])
    res = linprog(-w, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs-ds")
    if res.status != 0:
        return float("inf")
    best = -float(res.fun)
    return float(np.floor(best + 1e-7)) if np.allclose(w, np.round(w)) else best


def lp_lower_bound(problem: PlacementProblem, min_placed_weight: float | None = None) -> float:
    """LP-relaxation lower bound on the total cost of any feasible assignment that places at least
    ``min_placed_weight`` (default: every job that has a usable type; if the relaxation cannot
    place that much, the LP's maximum placeable weight). In the problem's cost units."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    m = _model(problem)
    if m.jobs.size == 0:
        return 0.0
    w = problem.weights[m.jobs]
    a_ub = vstack([m.per_job, m.per_type]).tocsr()
    b_ub = np.concatenate([np.ones(problem.n_jobs), problem.capacity])
    if min_placed_weight is None:
        placeable = float(problem.weights[np.unique(m.jobs)].sum())
        res = linprog(-w, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs")
        min_placed_weight = min(placeable, -float(res.fun)) if res.status == 0 else placeable
    if min_placed_weight <= 0:
        return 0.0
    a_ub = vstack([a_ub, csr_matrix(-w.reshape(1, -1))]).tocsr()
    b_ub = np.concatenate([b_ub, [-(min_placed_weight - 1e-7 * max(1.0, min_placed_weight))]])
    res = linprog(m.cost, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs")
    if res.status != 0:
        return float("nan")
    return float(res.fun) * m.scale


def assignment_applicable(problem: PlacementProblem, max_slots: int) -> bool:
    """Unit demands, equal weights and at most ``max_slots`` expanded capacity slots."""
    if problem.n_jobs == 0 or not np.all(problem.demand == 1):
        return False
    if problem.priority is not None and np.ptp(problem.priority) > 0:
        return False
    slots = np.minimum(np.floor(problem.capacity + 1e-9), problem.n_jobs).sum()
    return 0 < slots <= max_slots and problem.n_jobs * slots <= 4_000_000


def solve_assignment(problem: PlacementProblem) -> np.ndarray:
    """Optimal lexicographic solution for unit demands: each free GPU is a column; an infeasible
    pair costs more than all feasible costs together, so the matching first maximises the number
    of placed jobs and then minimises their cost."""
    from scipy.optimize import linear_sum_assignment

    slots_per_type = np.minimum(np.floor(problem.capacity + 1e-9), problem.n_jobs).astype(np.int64)
    slot_type = np.repeat(np.arange(problem.n_types), slots_per_type)
    usable = problem.usable()
    cost = problem.cost
    finite = cost[usable]
    big = (float(finite.sum()) + 1.0) * 2.0 if finite.size else 1.0
    matrix = np.where(usable, cost, big)[:, slot_type]
    rows, cols = linear_sum_assignment(matrix)
    assignment = np.full(problem.n_jobs, -1, dtype=np.int64)
    ok = matrix[rows, cols] < big
    assignment[rows[ok]] = slot_type[cols[ok]]
    return assignment


@dataclass
class LpRounding:
    assignment: np.ndarray
    bound: float | None  # LP optimum when ``jobs`` were all placeable jobs (then a lower bound)


def lp_round(problem: PlacementProblem, jobs: np.ndarray) -> LpRounding | None:
    """Re-optimise where ``jobs`` go: solve the LP relaxation with each of them placed exactly once
    (equality rows; the other jobs left out), keep its integral part, place the few fractional jobs
    greedily on what is left, insert any other job that still fits, then local search.
    The LP optimum is a lower bound for the whole problem when ``jobs`` are all the placeable jobs.
    None when the LP fails."""
    from scipy.optimize import linprog

    from energaizer.placement.greedy import greedy_assign, improve

    m = _model(problem)
    if m.jobs.size == 0 or jobs.size == 0:
        return None
    chosen = np.zeros(problem.n_jobs, dtype=bool)
    chosen[jobs] = True
    keep = chosen[m.jobs]
    var_jobs, var_types = m.jobs[keep], m.types[keep]
    res = linprog(
        m.cost[keep],
        A_ub=m.per_type[:, keep],
        b_ub=problem.capacity,
        A_eq=m.per_job[jobs][:, keep],
        b_eq=np.ones(jobs.size),
        bounds=(0, 1),
        method="highs-ds",
    )
    if res.status != 0 or res.x is None:
        return None
    whole = res.x > 1 - 1e-6
    assignment = np.full(problem.n_jobs, -1, dtype=np.int64)
    assignment[var_jobs[whole]] = var_types[whole]
    load = np.bincount(var_types[whole], weights=problem.demand[var_jobs[whole]], minlength=problem.n_types)
    rest = np.nonzero(assignment < 0)[0]
    if rest.size:
        sub = PlacementProblem(
            job_ids=[problem.job_ids[j] for j in rest],
            type_ids=problem.type_ids,
            cost=problem.cost[rest],
            demand=problem.demand[rest],
            capacity=np.maximum(problem.capacity - load, 0.0),
            priority=None if problem.priority is None else problem.priority[rest],
        )
        # the LP's fractional jobs first, then the rest
        sub_assign = greedy_assign(sub, max_rounds=0)
        assignment[rest] = sub_assign
    improve(problem, assignment, max_rounds=2, swaps=False)
    all_placeable = jobs.size == np.unique(m.jobs).size
    return LpRounding(assignment, float(res.fun) * m.scale if all_placeable else None)
