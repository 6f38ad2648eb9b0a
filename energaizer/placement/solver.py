"""``solve``: pick the right algorithm for a placement problem and return the best assignment found."""

from __future__ import annotations

import time

import numpy as np

from energaizer.placement.exact import (
    assignment_applicable,
    lp_lower_bound,
    lp_round,
    n_variables,
    solve_assignment,
    solve_milp,
)
from energaizer.placement.greedy import greedy_assign
from energaizer.placement.prices import price_assign
from energaizer.placement.problem import PlacementProblem, PlacementResult, evaluate, explain, is_feasible

EXACT_MAX_VARS = 2_000
LP_MAX_VARS = 200_000
PRICE_MIN_VARS = 20_000
ASSIGNMENT_MAX_SLOTS = 2_000


def _better(problem: PlacementProblem, a: np.ndarray, b: np.ndarray) -> bool:
    """Lexicographic: more placed weight, then lower cost."""
    ca, wa, _ = evaluate(problem, a)
    cb, wb, _ = evaluate(problem, b)
    tol = 1e-9 * max(1.0, wa, wb)
    if wa > wb + tol:
        return True
    if wa < wb - tol:
        return False
    return ca < cb - 1e-12 * max(1.0, abs(cb))


def _trivial(problem: PlacementProblem) -> np.ndarray | None:
    """Every job on its cheapest usable type, when that fits all capacities at once (then optimal)."""
    usable = problem.usable()
    cost = np.where(usable, problem.cost, np.inf)
    best = np.argmin(cost, axis=1) if problem.n_types else np.zeros(problem.n_jobs, dtype=np.int64)
    has = usable.any(axis=1) if problem.n_types else np.zeros(problem.n_jobs, dtype=bool)
    assignment = np.where(has, best, -1).astype(np.int64)
    return assignment if is_feasible(problem, assignment) else None


def _within_gap(problem: PlacementProblem, assignment: np.ndarray, bound: float, gap: float) -> bool:
    cost, _, _ = evaluate(problem, assignment)
    return cost <= bound + gap * max(abs(bound), 1e-12)


def solve(
    problem: PlacementProblem,
    *,
    time_limit_s: float = 0.5,
    exact_max_vars: int = EXACT_MAX_VARS,
    mip_rel_gap: float = 1e-3,
    lp_max_vars: int = LP_MAX_VARS,
    compute_bound: bool = False,
    price_min_vars: int = PRICE_MIN_VARS,
) -> PlacementResult:
    """Place as many jobs as possible (by weight), then at least total cost.

    Order of attempts: the trivial case (everyone's cheapest type fits; optimal); unit demands with
    few free GPUs -> ``linear_sum_assignment`` (optimal); otherwise the regret greedy, improved by
    LP rounding when there are at most ``lp_max_vars`` usable pairs (its LP optimum becomes
    ``lower_bound``: valid for every assignment placing at least as much weight); when capacity is
    short there, the capacity-price answer too (which jobs wait, re-chosen), the better one kept. When every
    placeable job is placed within ``mip_rel_gap`` of that bound the answer is ``optimal``; else,
    with at most ``exact_max_vars`` pairs, the HiGHS MILP runs for what is left of ``time_limit_s``
    and the better answer is kept. Above ``lp_max_vars`` usable pairs: with at least
    ``price_min_vars`` of them, capacity prices (:func:`energaizer.placement.prices.price_assign`,
    "prices"); fewer (only when ``lp_max_vars`` is set below it), the regret greedy with local
    search. ``compute_bound`` forces an LP bound where none was computed.
    """
    start = time.perf_counter()
    assignment: np.ndarray
    solver: str
    optimal: bool
    bound: float | None = None
    trivial = _trivial(problem)
    if trivial is not None:
        assignment, solver, optimal = trivial, "trivial", True
    elif assignment_applicable(problem, ASSIGNMENT_MAX_SLOTS):
        assignment, solver, optimal = solve_assignment(problem), "assignment", True
    elif (n_vars := n_variables(problem)) > lp_max_vars and n_vars >= price_min_vars:
        assignment, solver, optimal = price_assign(problem), "prices", False
    else:
        with_lp = n_vars <= lp_max_vars
        assignment = greedy_assign(problem, max_rounds=1 if with_lp else 4)
        solver, optimal = "greedy", False
        if with_lp:
            rounded = lp_round(problem, np.nonzero(assignment >= 0)[0])
            if rounded is not None:
                bound = rounded.bound  # None unless every placeable job was placed
                if is_feasible(problem, rounded.assignment) and not _better(
                    problem, assignment, rounded.assignment
                ):
                    assignment, solver = rounded.assignment, "lp-rounding"
        placeable = float(problem.weights[problem.usable().any(axis=1)].sum())
        _, weight, _ = evaluate(problem, assignment)
        everyone = weight >= placeable - 1e-9 * max(1.0, placeable)
        if not everyone and with_lp:
            # capacity short: the LP rounding keeps the greedy's choice of who waits, which the
            # capacity prices re-make (5,000 x 10 at load 0.8: 9.3 % above the LP bound -> 0.09 %)
            priced = price_assign(problem)
            if is_feasible(problem, priced) and _better(problem, priced, assignment):
                assignment, solver = priced, "prices"
                _, weight, _ = evaluate(problem, assignment)
                everyone = weight >= placeable - 1e-9 * max(1.0, placeable)
        if everyone and bound is not None and _within_gap(problem, assignment, bound, mip_rel_gap):
            optimal = True
        elif n_vars <= exact_max_vars:
            remaining = time_limit_s - (time.perf_counter() - start)
            if remaining > 0:
                outcome = solve_milp(
                    problem,
                    time_limit_s=remaining,
                    mip_rel_gap=mip_rel_gap,
                    min_weight=weight if everyone else None,
                    known_weight=weight,
                )
                if (
                    outcome.assignment is not None
                    and is_feasible(problem, outcome.assignment)
                    and not _better(problem, assignment, outcome.assignment)
                ):
                    assignment, solver = outcome.assignment, "milp"
                    optimal = outcome.optimal
    cost, weight, placed = evaluate(problem, assignment)
    if compute_bound and bound is None:
        bound = lp_lower_bound(problem, weight)
    return PlacementResult(
        assignment=assignment,
        objective=cost,
        placed=placed,
        solver=solver,
        optimal=optimal,
        lower_bound=bound,
        reasons=explain(problem, assignment),
        placed_weight=weight,
        seconds=time.perf_counter() - start,
    )
