"""Placement optimiser speed and quality: seconds per decision and gap to the LP lower bound.

Run: ``.venv/bin/python benchmarks/bench_placement.py`` (prints a table; no assertions).
Instances: lognormal job sizes, per-type efficiency factors 0.5-2x, 10 % infeasible pairs,
demands 1/2/4/8 GPUs; ``load`` is free GPUs / requested GPUs (below 1 some jobs must wait).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from energaizer.placement import PlacementProblem, lp_lower_bound, solve


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
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
