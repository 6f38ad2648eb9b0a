"""Planner speed and outcome: the 10,000-job demo and the raw Alibaba 2023 GPU pods.

Run: ``.venv/bin/python benchmarks/bench_plan.py`` (prints a table; no assertions).
The raw trace is read from ``../shared/traces/alibaba_gpu_v2023_pods.csv`` relative to the
repository root (research-use data, not shipped); that row is skipped when the file is absent.
Each raw GPU pod with an observed duration becomes a job of its GPU count that ran that long on
the reference GPU (a template training model drawn with the seed, see energaizer.planner.trace).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from energaizer.planner.costs import CostCache
from energaizer.planner.demo import DemoConfig, generate_demo
from energaizer.planner.plan import PlanOptions, PlanResult, run_plan
from energaizer.planner.pools import default_demo_pools
from energaizer.planner.trace import Trace, TraceBuilder, gpu_rows_of_alibaba, read_trace_rows

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "traces" / "alibaba_gpu_v2023_pods.csv"


def raw_alibaba(seed: int) -> Trace:
    with RAW.open(newline="", encoding="utf-8") as handle:
        rows = gpu_rows_of_alibaba(csv.DictReader(handle))
    return read_trace_rows(rows, TraceBuilder(seed=seed, source=str(RAW.name)), RAW.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pools = default_demo_pools()
    runs: list[tuple[str, float, float, PlanResult]] = []

    t0 = time.perf_counter()
    cache = CostCache()
    config = DemoConfig(jobs=args.jobs, seed=args.seed)
    trace = generate_demo(pools, config, cache)
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = run_plan(trace, pools, PlanOptions(seed=args.seed), cache=cache)
    runs.append((f"demo ({args.jobs} jobs, load {config.load})", t_build, time.perf_counter() - t1, result))

    if RAW.exists():
        t0 = time.perf_counter()
        cache = CostCache()
        trace = raw_alibaba(args.seed)
        t_build = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = run_plan(trace, pools, PlanOptions(seed=args.seed), cache=cache)
        runs.append(("raw Alibaba 2023 GPU pods", t_build, time.perf_counter() - t1, result))
    else:
        print(f"skipped the raw trace: {RAW} not found")

    table = Table(
        title="energaizer plan: simulation time and energy vs the lower bound (pools: demo, 48 GPUs)"
    )
    for col in (
        "trace",
        "jobs",
        "workloads",
        "build s",
        "plan s",
        "policy",
        "sim s",
        "kWh",
        "vs bound",
        "mean wait",
    ):
        table.add_column(col, justify="left" if col in ("trace", "policy") else "right")
    for name, t_build, t_plan, r in runs:
        for k, m in enumerate(r.metrics):
            first = k == 0
            table.add_row(
                name if first else "",
                str(len(r.trace)) if first else "",
                str(len(r.trace.workloads)) if first else "",
                f"{t_build:.2f}" if first else "",
                f"{t_plan:.2f}" if first else "",
                m.name,
                f"{m.simulation_seconds:.2f}",
                f"{m.total_energy_kwh:,.1f}",
                f"+{m.gap_to_lower_bound:.2%}" if m.gap_to_lower_bound is not None else "-",
                f"{m.mean_wait_seconds:,.0f} s",
            )
    Console(width=160).print(table)
    print(
        "build s: trace generation/reading; plan s: estimating every distinct workload on every pool, "
        "simulating all policies and the bounds."
    )


if __name__ == "__main__":
    main()
