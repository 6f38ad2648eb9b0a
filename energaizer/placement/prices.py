"""Large batches: price each GPU type's capacity (Lagrangian duals), assign by priced cost, repair.

The LP relaxation of placement couples the jobs only through the T capacity rows. With a price
``prices[t]`` per GPU of type t (the dual of that row) and, when not every job fits, a reward per
unit of weight (the dual of the "place at least this weight" row), the LP decomposes per job: job j
goes to its cheapest *priced* type, ``cost[j, t] + prices[t] * demand[j]``, when that is below
``reward * weight[j]``, else it waits. At the LP's optimal prices this is the LP optimum except for
the jobs tied between types (about T of them), so the answer is as good as the prices.

1. Starting prices from the exact LP (HiGHS) of every k-th job (``sample_jobs`` of them) with the
   capacities scaled to that share, in the MILP's two stages (most weight, then least cost at that
   weight); the duals of the capacity and weight rows are the prices and the reward.
2. Clearing sweeps (coordinate ascent on the dual): each type in turn gets the least price at which
   the jobs that prefer it fit in its capacity, the other prices fixed, found exactly from the
   sorted break-even prices. Coarse to fine: on every 4^k-th job first (at least ``COARSEST_JOBS``),
   then on all; at most ``sweeps`` per level, fewer once no price moves.
3. Every job to its cheapest priced option; a type still over capacity drops the jobs that lose
   least per GPU by leaving it; jobs left out go, weight per GPU first, to the cheapest type with
   room; then placed jobs move to cheaper types with room.
4. When not every job fits: per type, the jobs on it and the waiting ones are re-chosen by weight
   per GPU (more weight, or as much at less cost); then the chosen jobs alone are priced again, each
   of them to be placed (the LP's second stage without the reward's sampling error), the few the
   repair leaves out are inserted by moving jobs off a type to others with room, and that answer
   is kept when it places as much weight at less cost.

O(J T^2) per sweep over all jobs plus one small LP; no randomness (fixed strides, stable sorts).
"""

from __future__ import annotations

import numpy as np

from energaizer.placement.exact import SCALE_FLOOR
from energaizer.placement.greedy import move_to_cheapest
from energaizer.placement.problem import PlacementProblem

SAMPLE_JOBS = 250
SWEEPS = 10
MAX_MOVE_INSERTS = 64  # at most this many chosen jobs the second stage left out are inserted by moving others
COARSEST_JOBS = 4_000  # sweeps start on a sample of at least this many jobs
SWEEP_TOLERANCE = 1e-6  # of the typical cheapest cost per GPU: prices settled
_EPS = 1e-9


def _sample_prices(problem: PlacementProblem, base: np.ndarray, sample_jobs: int) -> tuple[np.ndarray, float]:
    """(price per GPU of each type, reward per unit weight; inf when every sampled job fits), in
    the problem's cost units, from the two-stage LP on every k-th placeable job."""
    from scipy.optimize import linprog  # here, not at start (exact.py says why)
    from scipy.sparse import coo_matrix, vstack

    placeable = np.nonzero(np.isfinite(base).any(axis=1))[0]
    t_count = problem.n_types
    step = max(1, int(np.ceil(placeable.size / sample_jobs)))
    sample = placeable[::step]
    share = sample.size / placeable.size
    jobs_local, types = np.nonzero(np.isfinite(base[sample]))
    cost = base[sample][jobs_local, types]
    # as in the MILP: a typical job's cost of order one (HiGHS's tolerances are absolute)
    scale = max(float(np.min(base[sample], axis=1).mean()), float(cost.max(initial=0.0)) * SCALE_FLOOR)
    scale = scale if scale > 0 else 1.0
    k = jobs_local.size
    cols = np.arange(k)
    demand = problem.demand[sample][jobs_local]
    weight = problem.weights[sample][jobs_local]
    per_job = coo_matrix((np.ones(k), (jobs_local, cols)), shape=(sample.size, k)).tocsr()
    per_type = coo_matrix((demand, (types, cols)), shape=(t_count, k)).tocsr()
    capacity = problem.capacity * share
    a_ub = vstack([per_job, per_type]).tocsr()
    b_ub = np.concatenate([np.ones(sample.size), capacity])
    stage1 = linprog(-weight, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs")
    total = float(problem.weights[sample].sum())
    max_weight = -float(stage1.fun) if stage1.status == 0 else total
    everyone = max_weight >= total * (1 - 1e-9)
    if everyone:
        res = linprog(
            cost / scale,
            A_ub=per_type,
            b_ub=capacity,
            A_eq=per_job,
            b_eq=np.ones(sample.size),
            bounds=(0, 1),
            method="highs",
        )
        if res.status != 0:
            return np.zeros(t_count), np.inf
        return np.maximum(-res.ineqlin.marginals, 0.0) * scale, np.inf
    floor = max_weight * (1 - 1e-7)
    a_ub2 = vstack([a_ub, coo_matrix(-weight.reshape(1, -1))]).tocsr()
    b_ub2 = np.concatenate([b_ub, [-floor]])
    res = linprog(cost / scale, A_ub=a_ub2, b_ub=b_ub2, bounds=(0, 1), method="highs")
    if res.status != 0:
        return np.zeros(t_count), np.inf
    duals = -res.ineqlin.marginals
    prices = np.maximum(duals[sample.size : sample.size + t_count], 0.0) * scale
    return prices, max(float(duals[-1]), 0.0) * scale


def _clear(
    base: np.ndarray, demand: np.ndarray, capacity: np.ndarray, wait: np.ndarray, prices: np.ndarray
) -> float:
    """One sweep: each type in turn gets the least price at which the jobs that prefer it fit in
    its capacity (the other prices fixed). Returns the largest price change (cost units per GPU)."""
    j_count, t_count = base.shape
    priced = np.asfortranarray(base + prices[None, :] * demand[:, None])
    other = np.empty(j_count)
    breakeven = np.empty(j_count)
    change = 0.0
    for t in range(t_count):
        np.copyto(other, wait)
        for s in range(t_count):
            if s != t:
                np.minimum(other, priced[:, s], out=other)
        with np.errstate(invalid="ignore"):
            np.subtract(other, base[:, t], out=breakeven)
            np.divide(breakeven, demand, out=breakeven)  # job prefers t while prices[t] < this
        want = np.nonzero(breakeven > 0)[0]  # usable on t and cheaper there at price 0
        price = 0.0
        if want.size and float(demand[want].sum()) > capacity[t] + _EPS:
            # only the first capacity / smallest-demand jobs by break-even can fit: sort those
            top = min(want.size - 1, int(capacity[t] / float(demand[want].min())) + 1)
            head = want[np.argpartition(-breakeven[want], top)[: top + 1]]
            order = head[np.lexsort((head, -breakeven[head]))]
            load = np.cumsum(demand[order])
            fit = int(np.searchsorted(load, capacity[t] + _EPS, side="right"))
            price = float(breakeven[order[fit]])
            if not np.isfinite(price):
                # more jobs that can use no other type than fit: no price clears it; push off
                # every job that has another option (the repair drops the rest)
                movable = breakeven[want][np.isfinite(breakeven[want])]
                price = float(movable.max()) if movable.size else prices[t]
            price = max(price, 0.0)
        change = max(change, abs(price - prices[t]))
        priced[:, t] += (price - prices[t]) * demand
        prices[t] = price
    return change


def price_assign(
    problem: PlacementProblem, *, sample_jobs: int = SAMPLE_JOBS, sweeps: int = SWEEPS
) -> np.ndarray:
    """A feasible assignment for a large batch from capacity prices (see the module docstring)."""
    j_count, t_count = problem.n_jobs, problem.n_types
    assignment = np.full(j_count, -1, dtype=np.int64)
    if j_count == 0 or t_count == 0:
        return assignment
    base = np.where(problem.usable(), problem.cost, np.inf)
    if not np.isfinite(base).any():
        return assignment
    demand, weights = problem.demand, problem.weights
    if sample_jobs > 0:
        prices, reward = _sample_prices(problem, base, sample_jobs)
    else:
        prices, reward = np.zeros(t_count), np.inf
    wait = np.full(j_count, np.inf) if not np.isfinite(reward) else reward * weights
    cheapest = base.min(axis=1)
    placeable = np.nonzero(np.isfinite(cheapest))[0]
    typical = float(np.mean(cheapest[placeable] / demand[placeable]))
    assignment, free = _priced(base, demand, weights, problem.capacity, wait, prices, sweeps, typical)
    if not (assignment[placeable] < 0).any():
        _shift(base, demand, assignment, free)
        return assignment
    # not everyone fits: more weight first (per type, denser jobs in), then re-price the chosen
    # jobs alone, each of them placed (the second LP stage), and keep that when it places as much
    _exchange(base, demand, weights, assignment, free)
    _shift(base, demand, assignment, free)
    _fill(base, demand, weights, assignment, free)
    chosen = np.nonzero(assignment >= 0)[0]
    again, again_free = _priced(
        base[chosen],
        demand[chosen],
        weights[chosen],
        problem.capacity,
        np.full(chosen.size, np.inf),
        prices - prices.min(),
        sweeps,
        typical,
    )
    second = np.full(j_count, -1, dtype=np.int64)
    second[chosen] = again
    left = chosen[again < 0]
    left = left[np.lexsort((left, -weights[left]))][:MAX_MOVE_INSERTS]
    _insert_by_moving(base, demand, second, again_free, left)
    _fill(base, demand, weights, second, again_free)
    if (second[chosen] < 0).any():
        _exchange(base, demand, weights, second, again_free)
    _shift(base, demand, second, again_free)
    w1, w2 = float(weights[assignment >= 0].sum()), float(weights[second >= 0].sum())
    c1 = float(base[chosen, assignment[chosen]].sum())
    on = np.nonzero(second >= 0)[0]
    c2 = float(base[on, second[on]].sum())
    tol = 1e-9 * max(1.0, w1)
    if w2 > w1 + tol or (w2 >= w1 - tol and c2 < c1):
        return second
    return assignment


def _priced(
    base: np.ndarray,
    demand: np.ndarray,
    weights: np.ndarray,
    capacity: np.ndarray,
    wait: np.ndarray,
    prices: np.ndarray,
    sweeps: int,
    typical: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Clear the prices (in place), put each job on its cheapest priced option, drop the jobs that
    lose least where a type is over capacity, and fill what is left. (assignment, free GPUs)."""
    j_count, t_count = base.shape
    placeable = np.nonzero(np.isfinite(base).any(axis=1))[0]
    # coarse to fine: settle the prices on every 4^k-th job (capacities scaled to that share)
    # first, where a sweep is cheap, so that few sweeps over all jobs remain
    steps = [1]
    while placeable.size // (steps[-1] * 4) >= COARSEST_JOBS:
        steps.append(steps[-1] * 4)
    for step in reversed(steps):
        sub = placeable[::step] if step > 1 else np.arange(j_count)
        share = sub.size / placeable.size if step > 1 else 1.0
        for _ in range(sweeps):
            change = _clear(base[sub], demand[sub], capacity * share, wait[sub], prices)
            if change <= SWEEP_TOLERANCE * typical:
                break
    assignment = np.full(j_count, -1, dtype=np.int64)
    priced = base + prices[None, :] * demand[:, None]
    rows = np.arange(j_count)
    best = np.argmin(priced, axis=1)
    best_priced = priced[rows, best]
    go = np.isfinite(best_priced) & (best_priced <= wait)
    assignment[go] = best[go]
    # over capacity: drop the jobs that lose least per GPU by leaving their type
    priced[rows, best] = np.inf
    with np.errstate(invalid="ignore"):  # inf - inf for jobs with no usable type (not placed)
        loss = (np.minimum(priced.min(axis=1), wait) - best_priced) / demand
    free = capacity - np.bincount(assignment[go], weights=demand[go], minlength=t_count)
    for t in np.nonzero(free < -_EPS)[0]:
        on = np.nonzero(assignment == t)[0]
        on = on[np.argsort(loss[on], kind="stable")]
        freed = np.cumsum(demand[on])
        drop = int(np.searchsorted(freed, -free[t] - _EPS, side="left")) + 1
        assignment[on[:drop]] = -1
        free[t] += float(freed[drop - 1])
    _fill(base, demand, weights, assignment, free)
    return assignment, free


def _exchange(
    base: np.ndarray, demand: np.ndarray, weights: np.ndarray, assignment: np.ndarray, free: np.ndarray
) -> None:
    """Per type, re-choose its jobs among those on it and the unplaced ones that may use it: weight
    per GPU first, then least cost there (a greedy knapsack); kept when it places more weight, or
    as much at a lower cost. Frees room held by big jobs for more, smaller ones."""
    capacity = free + np.bincount(
        assignment[assignment >= 0], weights=demand[assignment >= 0], minlength=free.size
    )
    for t in range(free.size):
        on = np.nonzero(assignment == t)[0]
        out = np.nonzero((assignment < 0) & np.isfinite(base[:, t]))[0]
        if not out.size:
            continue
        pool = np.concatenate([on, out])
        order = pool[np.lexsort((pool, base[pool, t], -weights[pool] / demand[pool]))]
        cum = np.cumsum(demand[order])
        head = int(np.searchsorted(cum, capacity[t] + _EPS, side="right"))
        take = np.zeros(order.size, dtype=bool)
        take[:head] = True
        room = float(capacity[t]) - (float(cum[head - 1]) if head else 0.0)
        smallest = float(demand[order].min())
        for k in range(head, order.size):
            if room + _EPS < smallest:
                break
            if demand[order[k]] <= room + _EPS:
                take[k] = True
                room -= demand[order[k]]
        new, old = order[take], on
        new_w, old_w = float(weights[new].sum()), float(weights[old].sum())
        tol = 1e-9 * max(1.0, old_w)
        if new_w > old_w + tol or (
            new_w >= old_w - tol and base[new, t].sum() < base[old, t].sum() * (1 - 1e-12)
        ):
            assignment[old] = -1
            assignment[new] = t
            free[t] = room


def _fill(
    base: np.ndarray, demand: np.ndarray, weights: np.ndarray, assignment: np.ndarray, free: np.ndarray
) -> None:
    """Unplaced jobs that fit somewhere: weight per GPU first, then least cost; each to its cheapest
    type with room."""
    out = np.nonzero(assignment < 0)[0]
    if not out.size:
        return
    fits = np.isfinite(base[out]) & (demand[out, None] <= free[None, :] + _EPS)
    out = out[fits.any(axis=1)]
    if not out.size:
        return
    cheapest = np.min(base[out], axis=1)
    order = out[np.lexsort((out, cheapest, -weights[out] / demand[out]))]
    smallest = float(demand[order].min())
    for j in order:
        row = np.where(demand[j] <= free + _EPS, base[j], np.inf)
        t = int(np.argmin(row))
        if np.isfinite(row[t]):
            assignment[j] = t
            free[t] -= demand[j]
            if free.max() + _EPS < smallest:
                return


def _shift(base: np.ndarray, demand: np.ndarray, assignment: np.ndarray, free: np.ndarray) -> None:
    """Move placed jobs to a cheaper type that has room for them, biggest saving first."""
    for _ in range(4):
        placed = np.nonzero(assignment >= 0)[0]
        if not placed.size:
            return
        current = base[placed, assignment[placed]]
        room = np.where(demand[placed, None] <= free[None, :] + _EPS, base[placed], np.inf)
        target = room.argmin(axis=1)
        gain = current - room[np.arange(placed.size), target]
        cand = np.nonzero(gain > _EPS * np.maximum(1.0, current))[0]
        if not cand.size:
            return
        # per target type, only the biggest savings that fit in its room now (the rest next pass)
        cand = cand[np.lexsort((cand, -gain[cand], target[cand]))]
        cum = np.cumsum(demand[placed[cand]])
        first = np.r_[0, np.nonzero(np.diff(target[cand]))[0] + 1]
        before = np.repeat(cum[first] - demand[placed[cand[first]]], np.diff(np.r_[first, cand.size]))
        cand = cand[cum - before <= free[target[cand]] + _EPS]
        moved = False
        for k in cand[np.argsort(-gain[cand], kind="stable")]:
            moved |= move_to_cheapest(base, demand, assignment, free, int(placed[k]))
        if not moved:
            return


def _insert_by_moving(
    base: np.ndarray, demand: np.ndarray, assignment: np.ndarray, free: np.ndarray, jobs: np.ndarray
) -> None:
    """Place each of ``jobs`` (unplaced) on a type it may use, making room there when needed by
    moving jobs off it to other types with room (cheapest extra cost per GPU freed first); the
    cheapest such insertion (its cost plus the moved jobs' extra cost) is made, none when no type
    can make room."""
    for u in jobs:
        best_cost, best_moves, best_type = np.inf, [], -1
        for t in np.nonzero(np.isfinite(base[u]))[0]:
            sim = free.copy()
            total, moves = float(base[u, t]), []
            on = np.nonzero(assignment == t)[0]
            while sim[t] + _EPS < demand[u] and on.size and total < best_cost:
                need = demand[u] - sim[t]
                room = np.where(demand[on, None] <= sim[None, :] + _EPS, base[on], np.inf)
                room[:, t] = np.inf
                target = room.argmin(axis=1)
                extra = room[np.arange(on.size), target] - base[on, t]
                per_gpu = extra / np.minimum(demand[on], need)
                k = int(np.argmin(per_gpu))
                if not np.isfinite(per_gpu[k]):
                    break
                j, to = int(on[k]), int(target[k])
                sim[to] -= demand[j]
                sim[t] += demand[j]
                total += float(extra[k])
                moves.append((j, to))
                on = np.delete(on, k)
            if sim[t] + _EPS >= demand[u] and total < best_cost:
                best_cost, best_moves, best_type = total, moves, int(t)
        if best_type < 0:
            continue
        for j, to in best_moves:
            free[assignment[j]] += demand[j]
            free[to] -= demand[j]
            assignment[j] = to
        assignment[u] = best_type
        free[best_type] -= demand[u]
