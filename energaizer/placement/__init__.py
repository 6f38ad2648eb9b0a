"""The placement optimiser shared by the operator and the planner (pure NumPy/SciPy).

Given J jobs and T GPU types, put each job on at most one type so that the total demand on a type
stays within its free GPUs; place as many jobs as possible (weighted by ``priority``), and among
those assignments minimise the total cost (lexicographic). This is a generalised assignment /
multiple-knapsack problem.

API::

    PlacementProblem(job_ids, type_ids, cost, demand, capacity, infeasible_reasons=None, priority=None)
        cost      (J, T) objective per job on each type (J, s or J*s); np.inf = infeasible
        demand    (J,)   GPUs a job needs on one type (replicas * gpusPerReplica)
        capacity  (T,)   free GPUs per type
    PlacementResult(assignment, objective, placed, solver, optimal, lower_bound, reasons, ...)
        assignment (J,) type index or -1
        solver     "trivial" | "assignment" | "lp-rounding" | "milp" | "prices" | "greedy"
        optimal    proven optimal (within mip_rel_gap); lower_bound: LP bound where computed
        reasons    per job: "" when placed, else why (no feasible type / capacity exhausted)
    solve(problem, *, time_limit_s=0.5, exact_max_vars=2000, mip_rel_gap=1e-3,
          lp_max_vars=200000, compute_bound=False, price_min_vars=20000) -> PlacementResult
    lp_lower_bound(problem, min_placed_weight=None) -> float   (LP relaxation)
    objective_matrix(energy, duration, "energy" | "time" | "energy-delay", fleet=None, demand=None)
                                                                -> cost matrix
    FleetModel(mode, idle_power_watts, idle_timeout_seconds=600)  "static" | "elastic" fleet mode
    marginal_fleet_energy(energy, duration, demand, fleet)      -> (J, T) marginal fleet energy
    counterfactual_energy(estimates, default_order, free_gpus, demand) -> Counterfactual | None
                                    plain scheduler's type (first free feasible in default order) and
                                    the worst feasible type, with their energies
    greedy_assign(problem) -> assignment                        (the heuristic alone)
    price_assign(problem) -> assignment                         (the capacity-price path alone)

Algorithms: everyone's cheapest type fits -> "trivial" (optimal). Unit demands with at most 2,000
free GPUs -> ``scipy.optimize.linear_sum_assignment`` over GPU slots (optimal). Otherwise a
regret greedy chooses which jobs to place (trying a smallest-demand-first order too when some
are left out); with at most ``lp_max_vars`` usable pairs the LP relaxation (HiGHS dual simplex)
re-optimises where those jobs go and is rounded ("lp-rounding"; GAP relaxations have at most
about T fractional jobs, so this lands within ~0.1 % of the bound), and when that is not provably
within ``mip_rel_gap`` and there are at most ``exact_max_vars`` pairs, the HiGHS MILP runs for the
rest of ``time_limit_s`` (HiGHS may overrun it slightly) and the better answer is kept.
Above ``lp_max_vars`` pairs (and from ``price_min_vars``) the LP is solved through its duals
instead ("prices", :mod:`energaizer.placement.prices`): a price per GPU of each type from the LP of
a sample, settled on all jobs by clearing sweeps, each job to its cheapest priced type, then repair
and local moves; within about 0.01-0.1 % of the LP bound at 25,000-100,000 jobs x 10 types in about
a second. Between ``lp_max_vars`` and ``price_min_vars`` (only when ``lp_max_vars`` is set below
it, as the planner does for its small batches) the greedy with local search (insert, shift,
pairwise swap) is the answer.
See ``benchmarks/bench_placement.py`` for times and gaps.
"""

from __future__ import annotations

from energaizer.placement.exact import lp_lower_bound
from energaizer.placement.fleet import (
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    FLEET_MODES,
    Counterfactual,
    FleetMode,
    FleetModel,
    counterfactual_energy,
    marginal_fleet_energy,
)
from energaizer.placement.greedy import greedy_assign
from energaizer.placement.prices import price_assign
from energaizer.placement.problem import (
    OBJECTIVES,
    REASON_CAPACITY,
    Objective,
    PlacementProblem,
    PlacementResult,
    evaluate,
    is_feasible,
    objective_matrix,
)
from energaizer.placement.solver import EXACT_MAX_VARS, LP_MAX_VARS, PRICE_MIN_VARS, solve

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_SECONDS",
    "EXACT_MAX_VARS",
    "FLEET_MODES",
    "LP_MAX_VARS",
    "OBJECTIVES",
    "PRICE_MIN_VARS",
    "REASON_CAPACITY",
    "Counterfactual",
    "FleetMode",
    "FleetModel",
    "Objective",
    "PlacementProblem",
    "PlacementResult",
    "counterfactual_energy",
    "evaluate",
    "greedy_assign",
    "is_feasible",
    "lp_lower_bound",
    "marginal_fleet_energy",
    "objective_matrix",
    "price_assign",
    "solve",
]
