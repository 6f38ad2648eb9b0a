"""Placement optimiser speed and quality: seconds per decision and gap to the LP lower bound.

Run: ``.venv/bin/python benchmarks/bench_placement.py`` (prints a table; no assertions).
Instances: lognormal job sizes, per-type efficiency factors 0.5-2x, 10 % infeasible pairs,
demands 1/2/4/8 GPUs; ``load`` is free GPUs / requested GPUs (below 1 some jobs must wait).

``--large``: 5,000 / 25,000 / 100,000 jobs x 10 types at loads 1.3 and 0.8, one run each, the
default ``solve`` ("prices" above ``LP_MAX_VARS`` pairs) against the path it replaced (the greedy
with local search, ``price_min_vars`` out of reach; at 5,000 jobs both are the LP path, so the
price path alone is shown instead), wall and CPU seconds. Its LP bounds take HiGHS about ten
minutes each at 100,000 jobs (a million variables): the whole run takes about half an hour
(``--no-bounds``: times only; the greedy alone takes about 1.5 minutes at 100,000 jobs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from energaizer.placement import PlacementProblem, lp_lower_bound, solve
from energaizer.placement.prices import price_assign
from energaizer.placement.problem import evaluate


def instance(jobs: int, types: int, load: float, seed: int, unit: bool = False) -> PlacementProblem:
    rng = np.random.default_rng(seed)
    cost = (
        rng.lognormal(10, 1, (jobs, 1))
        * rng.uniform(0.5, 2.0, (1, types))
        * rng.uniform(0.8, 1.25, (jobs, types))
    )
    cost[rng.random((jobs, types)) < 0.1] = np.inf
    demand = np.ones(jobs) if unit else rng.choice([1, 2, 4, 8], jobs, p=[0.6, 0.2, 0.1, 0.1]).astype(float)
    capacity = np.full(types, np.floor(demand.sum() * load / types))
    return PlacementProblem(
        [f"j{i}" for i in range(jobs)], [f"t{i}" for i in range(types)], cost, demand, capacity
    )


CASES = [
    (50, 4, 1.3, True),
    (200, 3, 1.3, False),
    (200, 3, 0.8, False),
    (1000, 5, 1.3, False),
    (1000, 5, 0.8, False),
    (5000, 10, 1.3, False),
    (5000, 10, 0.8, False),
    (5000, 10, 3.0, False),
]


LARGE = [(jobs, 10, load) for jobs in (5_000, 25_000, 100_000) for load in (1.3, 0.8)]


def large(bounds_too: bool = True) -> None:
    """Before / after at scale: times first (the bounds' LPs would load the machine), bounds last."""
    rows = []
    for jobs, types, load in LARGE:
        p = instance(jobs, types, load, seed=1)
        runs = [("after", lambda p=p: solve(p)), ("before", lambda p=p: solve(p, price_min_vars=10**12))]
        if jobs * types <= 200_000:  # the LP path either way: show the price path alone too
            runs = [("both", runs[0][1]), ("prices alone", lambda p=p: price_assign(p))]
        for label, run in runs:
            wall, cpu = time.perf_counter(), time.process_time()
            out = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if isinstance(out, np.ndarray):
                cost, weight, placed = evaluate(p, out)
                solver = "prices"
            else:
                cost, weight, placed, solver = out.objective, out.placed_weight, out.placed, out.solver
            rows.append((jobs, types, load, label, solver, placed, wall, cpu, cost, weight))
            print(f"{jobs} x {types} load {load:g} {label}: {solver} {wall:.3f} s", flush=True)
    bounds: dict[tuple[int, float, float], float] = {}
    table = Table(title="energaizer.placement.solve at scale (one run each)")
    for col in ("jobs", "types", "load", "run", "solver", "placed", "seconds", "CPU s", "gap to LP bound"):
        table.add_column(col, justify="right")
    for jobs, types, load, label, solver, placed, wall, cpu, cost, weight in rows:
        key = (jobs, load, weight)
        if bounds_too and key not in bounds:
            bounds[key] = lp_lower_bound(instance(jobs, types, load, seed=1), weight)
        bound = bounds.get(key, float("nan"))
        gap = (cost - bound) / bound if bound > 0 else float("nan")
        table.add_row(
            str(jobs),
            str(types),
            f"{load:g}",
            label,
            solver,
            f"{placed}/{jobs}",
            f"{wall:.3f}",
            f"{cpu:.3f}",
            f"{gap:.3%}",
        )
    Console(width=140).print(table)
    print("gap: (objective - LP bound) / LP bound, the LP constrained to place at least as many jobs.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--large", action="store_true", help="5k-100k jobs, before / after, with LP bounds (slow)"
    )
    args = parser.parse_args()
    if args.large:
        large()
        return
    table = Table(title="energaizer.placement.solve (median of repeats)")
    for col in ("jobs", "types", "load", "unit", "solver", "placed", "seconds", "gap to LP bound"):
        table.add_column(col, justify="right")
    for jobs, types, load, unit in CASES:
        p = instance(jobs, types, load, seed=1, unit=unit)
        solve(p)  # warm-up (imports, HiGHS)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = solve(p)
            times.append(time.perf_counter() - t0)
        bound = lp_lower_bound(p, r.placed_weight)
        gap = (r.objective - bound) / bound if bound > 0 else 0.0
        table.add_row(
            str(jobs),
            str(types),
            f"{load:g}",
            "yes" if unit else "no",
            r.solver,
            f"{r.placed}/{jobs}",
            f"{np.median(times):.3f}",
            f"{gap:.3%}",
        )
    Console().print(table)
    print("gap: (objective - LP bound) / LP bound, the LP constrained to place at least as many jobs.")


if __name__ == "__main__":
    main()
