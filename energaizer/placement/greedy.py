"""Fast heuristic for large batches: regret-ordered greedy, then local improvement.

Order: jobs with a higher weight first, then those that lose most if they miss their best type
(regret = second-best minus best usable cost, infinite when only one type is usable). Each job
goes to its cheapest type with room. Whenever a type fills up the regrets of the jobs still waiting
are recomputed against the types that still have room. Local search then repeats, until nothing
improves: (1) put unplaced jobs where they fit, (2) move a placed job to a cheaper type with room,
(3) swap two jobs between two types when that lowers the total and respects both capacities.
"""

from __future__ import annotations

import numpy as np

from energaizer.placement.problem import PlacementProblem, evaluate

_EPS = 1e-9


def _regret_order(cost: np.ndarray, weights: np.ndarray, demand: np.ndarray, by_density: bool) -> np.ndarray:
    """Local indices in placement order (``cost`` holds only the usable, fitting pairs)."""
    if cost.shape[1] >= 2:
        two = np.partition(cost, 1, axis=1)[:, :2]
        best, second = two[:, 0], two[:, 1]
    else:
        best = cost[:, 0]
        second = np.full_like(best, np.inf)
    with np.errstate(invalid="ignore"):
        regret = np.where(np.isfinite(second), second - best, np.inf)
    regret = np.where(np.isfinite(best), regret, -np.inf)  # no usable type left: last
    primary = weights / demand if by_density else weights
    idx = np.arange(cost.shape[0])
    # lexsort: the last key is primary -> weight (or weight per GPU) desc, regret desc, best asc
    return np.lexsort((idx, best, -regret, -primary))


def greedy_assign(problem: PlacementProblem, *, max_rounds: int = 4) -> np.ndarray:
    """A good feasible assignment: regret order, plus (when that leaves placeable jobs out) a
    smallest-demand-first order that places more jobs; the lexicographically better one is kept.
    Each gets up to ``max_rounds`` rounds of local search (0: the plain greedy)."""
    first = _greedy(problem, by_density=False)
    improve(problem, first, max_rounds=max_rounds)
    _, w1, _ = evaluate(problem, first)
    placeable = float(problem.weights[problem.usable().any(axis=1)].sum()) if problem.n_types else 0.0
    if w1 >= placeable - 1e-9 * max(1.0, placeable):
        return first
    second = _greedy(problem, by_density=True)
    improve(problem, second, max_rounds=max_rounds)
    c1, _, _ = evaluate(problem, first)
    c2, w2, _ = evaluate(problem, second)
    tol = 1e-9 * max(1.0, w1)
    return second if (w2 > w1 + tol or (abs(w2 - w1) <= tol and c2 < c1)) else first


def _greedy(problem: PlacementProblem, *, by_density: bool) -> np.ndarray:
    j_count, t_count = problem.n_jobs, problem.n_types
    assignment = np.full(j_count, -1, dtype=np.int64)
    if j_count == 0 or t_count == 0:
        return assignment
    demand = problem.demand
    weights = problem.weights
    free = problem.capacity.astype(float).copy()
    base = np.where(problem.usable(), problem.cost, np.inf)

    pending = np.nonzero(np.isfinite(base).any(axis=1))[0]
    while pending.size:
        fits = demand[pending, None] <= free[None, :] + _EPS
        cur = np.where(fits, base[pending], np.inf)
        order = _regret_order(cur, weights[pending], demand[pending], by_density)
        stale = False
        done = []
        for k in order:
            j = pending[k]
            row = cur[k]
            t = int(np.argmin(row))
            if not np.isfinite(row[t]):
                done.append(k)
                continue
            if demand[j] > free[t] + _EPS:
                stale = True  # its best type filled up since the regrets were computed
                break
            assignment[j] = t
            free[t] -= demand[j]
            done.append(k)
            if free[t] + _EPS < demand[pending].min():
                stale = True
                break
        keep = np.ones(pending.size, dtype=bool)
        keep[np.asarray(done, dtype=np.int64)] = False
        pending = pending[keep]
        if not stale:
            break
    return assignment


def improve(
    problem: PlacementProblem, assignment: np.ndarray, *, max_rounds: int = 4, swaps: bool = True
) -> None:
    """Local search in place on a feasible assignment: insert unplaced jobs, shift, swap."""
    base = np.where(problem.usable(), problem.cost, np.inf)
    placed = assignment >= 0
    load = np.bincount(assignment[placed], weights=problem.demand[placed], minlength=problem.n_types)
    free = problem.capacity.astype(float) - load
    _local_search(problem, base, assignment, free, max_rounds=max_rounds, swaps=swaps)


def _local_search(
    problem: PlacementProblem,
    base: np.ndarray,
    assignment: np.ndarray,
    free: np.ndarray,
    *,
    max_rounds: int,
    swaps: bool = True,
) -> None:
    demand = problem.demand
    t_count = problem.n_types
    for _ in range(max_rounds):
        improved = _insert_unplaced(base, demand, assignment, free)
        improved |= _shift(base, demand, assignment, free)
        if swaps and t_count >= 2:
            improved |= _swap(base, demand, assignment, free)
        if not improved:
            return


def _insert_unplaced(base: np.ndarray, demand: np.ndarray, assignment: np.ndarray, free: np.ndarray) -> bool:
    out = np.nonzero(assignment < 0)[0]
    if not out.size:
        return False
    out = out[(np.isfinite(base[out]) & (demand[out, None] <= free[None, :] + _EPS)).any(axis=1)]
    improved = False
    for j in out:
        row = np.where(demand[j] <= free + _EPS, base[j], np.inf)
        t = int(np.argmin(row))
        if np.isfinite(row[t]):
            assignment[j] = t
            free[t] -= demand[j]
            improved = True
    return improved


def _shift(base: np.ndarray, demand: np.ndarray, assignment: np.ndarray, free: np.ndarray) -> bool:
    placed = np.nonzero(assignment >= 0)[0]
    if not placed.size:
        return False
    current = base[placed, assignment[placed]]
    gain = current[:, None] - base[placed]  # > 0 where another type is cheaper
    cand = np.nonzero((gain > _EPS * np.maximum(1.0, current[:, None])).any(axis=1))[0]
    if not cand.size:
        return False
    improved = False
    for k in cand[np.argsort(-gain[cand].max(axis=1))]:
        improved |= move_to_cheapest(base, demand, assignment, free, int(placed[k]))
    return improved


def move_to_cheapest(
    base: np.ndarray, demand: np.ndarray, assignment: np.ndarray, free: np.ndarray, j: int
) -> bool:
    """Move placed job ``j`` to the cheapest type with room for it now, when that costs less."""
    a = assignment[j]
    row = np.where(demand[j] <= free + _EPS, base[j], np.inf)
    t = int(np.argmin(row))
    if row[t] < base[j, a] - _EPS * max(1.0, base[j, a]):
        free[a] += demand[j]
        free[t] -= demand[j]
        assignment[j] = t
        return True
    return False


def _swap(
    base: np.ndarray, demand: np.ndarray, assignment: np.ndarray, free: np.ndarray, top: int = 64
) -> bool:
    """Best-improvement swaps between every pair of types, on the jobs most eager to move."""
    improved = False
    t_count = base.shape[1]
    for a in range(t_count):
        for b in range(a + 1, t_count):
            for _ in range(top):
                on_a = np.nonzero(assignment == a)[0]
                on_b = np.nonzero(assignment == b)[0]
                if not on_a.size or not on_b.size:
                    break
                gain_a = base[on_a, a] - base[on_a, b]  # saving if a-job moves to b
                gain_b = base[on_b, b] - base[on_b, a]
                on_a = on_a[np.isfinite(gain_a)]
                gain_a = gain_a[np.isfinite(gain_a)]
                on_b = on_b[np.isfinite(gain_b)]
                gain_b = gain_b[np.isfinite(gain_b)]
                if not on_a.size or not on_b.size or gain_a.max() + gain_b.max() <= 0:
                    break
                ia = np.argsort(-gain_a)[:top]
                ib = np.argsort(-gain_b)[:top]
                ja, jb = on_a[ia], on_b[ib]
                total = gain_a[ia][:, None] + gain_b[ib][None, :]
                da, db = demand[ja][:, None], demand[jb][None, :]
                ok = (free[a] + da - db >= -_EPS) & (free[b] + db - da >= -_EPS)
                scale = np.maximum(1.0, np.abs(base[ja, a])[:, None] + np.abs(base[jb, b])[None, :])
                total = np.where(ok & (total > _EPS * scale), total, -np.inf)
                flat = int(np.argmax(total))
                if not np.isfinite(total.flat[flat]):
                    break
                x, y = divmod(flat, total.shape[1])
                j1, j2 = ja[x], jb[y]
                free[a] += demand[j1] - demand[j2]
                free[b] += demand[j2] - demand[j1]
                assignment[j1], assignment[j2] = b, a
                improved = True
    return improved
