"""Fleet energy and waits of the placement policies on a trace derived from the raw Alibaba 2023 GPU
pods, in both fleet modes, next to the built-in demo (the issue-17 acceptance figures).

Run: ``.venv/bin/python benchmarks/bench_plan_alibaba.py [--pools pools.yaml] [--json out.json]``
(prints a table; no assertions). The raw pods are read from
``../shared/traces/alibaba_gpu_v2023_pods.csv`` relative to the repository root (research-use
data, not shipped); the Alibaba rows are skipped when the file is absent.

The derived trace (written as a plan trace CSV, ``--write-trace FILE`` keeps it):

* every pod that holds GPUs (``gpu_count`` >= 1; a GPU-sharing pod counts as one GPU) and whose
  duration was observed (not censored at the trace end) is one job, submitted at its
  ``submit_time_s`` and running ``duration_s`` on its reference GPU;
* the reference GPU is the pod's ``gpu_spec`` when that names exactly one catalog GPU (``T4`` ->
  ``t4``, ``V100M16|V100M32`` -> ``v100-sxm2-32gb``), else the plan's default reference
  (``a100-sxm4-80gb``): the trace does not record where most pods ran;
* the isolated pods submitted before the trace's active window (the 0.5 % earliest submissions,
  long-running services months before the rest) are left out, so that the common horizon is the
  active window and not months of an empty cluster;
* what a job runs is a template training model drawn with the seed (see energaizer.planner.trace).

It is replayed on the demo pools (48 GPUs; about a third busy at reference speed) unless
``--pools`` names others.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from energaizer.planner.costs import CostCache
from energaizer.planner.demo import DemoConfig, generate_demo
from energaizer.planner.plan import PlanOptions, PlanResult, run_plan
from energaizer.planner.pools import NodePool, default_demo_pools, read_pools
from energaizer.planner.trace import Trace, gpu_rows_of_alibaba, read_trace

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (CI), or beside the folder of worktrees
RAW = next(
    (
        p / "shared" / "traces" / "alibaba_gpu_v2023_pods.csv"
        for p in (REPO.parent, REPO.parent.parent)
        if (p / "shared" / "traces" / "alibaba_gpu_v2023_pods.csv").exists()
    ),
    REPO.parent / "shared" / "traces" / "alibaba_gpu_v2023_pods.csv",
)
SPEC_TO_GPU = {"T4": "t4", "V100M16|V100M32": "v100-sxm2-32gb", "V100M32": "v100-sxm2-32gb"}
EARLY_QUANTILE = 0.005
MODES = ("static", "elastic")


def derived_rows(rows: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """Trace rows (job_id, submit_time_s, gpu_count, duration_s, reference_gpu) from raw pods,
    without the isolated pods before the active window."""
    out = gpu_rows_of_alibaba(rows, SPEC_TO_GPU)
    if not out:
        return []
    start = float(np.quantile([float(r["submit_time_s"]) for r in out], EARLY_QUANTILE))
    kept = [r for r in out if float(r["submit_time_s"]) >= start]
    return sorted(kept, key=lambda r: float(r["submit_time_s"]))


def write_trace(rows: list[Mapping[str, str]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def alibaba_trace(raw: Path, seed: int, keep: Path | None) -> Trace:
    with raw.open(newline="", encoding="utf-8") as handle:
        rows = derived_rows(csv.DictReader(handle))
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / "alibaba_derived.csv"
        write_trace(rows, path)
        trace = read_trace(path, seed=seed)
    trace.source = "Alibaba 2023 GPU pods (derived)"
    return trace


def acceptance(r: PlanResult) -> dict[str, float | bool]:
    ea, ff, fg = (r.policy(n) for n in ("energy-aware", "first-fit", "fastest-gpu"))
    gap = ea.fleet_energy_joules / r.lower_bound_fleet_energy_joules - 1
    return {
        "below_first_fit": ea.fleet_energy_joules < ff.fleet_energy_joules,
        "not_above_fastest_gpu": ea.fleet_energy_joules <= fg.fleet_energy_joules,
        "gap_to_fleet_lower_bound": gap,
        "within_2_percent": gap <= 0.02,
        "p95_wait_above_fastest_gpu_seconds": ea.p95_wait_seconds - fg.p95_wait_seconds,
        "p95_within_15_min": ea.p95_wait_seconds - fg.p95_wait_seconds <= 900.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", type=Path, default=RAW, help="the raw Alibaba 2023 pods CSV")
    parser.add_argument("--pools", type=Path, default=None, help="node pools YAML (default: the demo pools)")
    parser.add_argument("--max-wait-seconds", type=float, default=900.0)
    parser.add_argument("--idle-timeout-seconds", type=float, default=600.0)
    parser.add_argument("--write-trace", type=Path, default=None, help="keep the derived trace CSV here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    pools: list[NodePool] = read_pools(args.pools) if args.pools else default_demo_pools()

    traces: list[tuple[str, Trace, CostCache, float]] = []
    t0 = time.perf_counter()
    cache = CostCache()
    demo = generate_demo(default_demo_pools(), DemoConfig(jobs=2000, load=0.5, seed=args.seed), cache)
    traces.append(("plan --demo (2000 jobs)", demo, cache, time.perf_counter() - t0))
    if args.raw.exists():
        t0 = time.perf_counter()
        trace = alibaba_trace(args.raw, args.seed, args.write_trace)
        traces.append((f"Alibaba derived ({len(trace)} pods)", trace, CostCache(), time.perf_counter() - t0))
    else:
        print(f"skipped the Alibaba trace: {args.raw} not found")

    table = Table(title="fleet energy (jobs + idle GPUs over one common horizon) and waits per policy")
    for col in (
        "trace",
        "mode",
        "plan s",
        "horizon h",
        "policy",
        "fleet kWh",
        "vs bound",
        "vs energy-aware",
        "idle kWh",
        "job kWh",
        "p95 wait",
        "max wait",
    ):
        table.add_column(col, justify="left" if col in ("trace", "mode", "policy") else "right")
    doc: list[dict[str, object]] = []
    for name, trace, cache, t_build in traces:
        run_pools = default_demo_pools() if name.startswith("plan --demo") else pools
        for mode in MODES:
            opts = PlanOptions(
                seed=args.seed,
                fleet_mode=mode,
                max_wait_seconds=args.max_wait_seconds,
                idle_timeout_seconds=args.idle_timeout_seconds,
            )
            t1 = time.perf_counter()
            r = run_plan(trace, run_pools, opts, cache=cache)
            t_plan = time.perf_counter() - t1
            for k, m in enumerate(r.metrics):
                table.add_row(
                    name if k == 0 else "",
                    mode if k == 0 else "",
                    f"{t_plan:.1f}" if k == 0 else "",
                    f"{r.horizon_seconds / 3600:,.1f}" if k == 0 else "",
                    m.name,
                    f"{m.fleet_energy_kwh:,.1f}",
                    f"+{m.gap_to_fleet_lower_bound:.2%}" if m.gap_to_fleet_lower_bound is not None else "-",
                    "-" if m.name == "energy-aware" else f"{m.fleet_energy_vs_energy_aware:+.2%}",
                    f"{m.idle_energy_joules / 3.6e6:,.1f}",
                    f"{m.total_energy_kwh:,.1f}",
                    f"{m.p95_wait_seconds / 60:,.1f} min",
                    f"{m.max_wait_seconds / 60:,.1f} min",
                )
            table.add_row(
                "",
                "",
                "",
                "",
                "lower-bound",
                f"{r.lower_bound_fleet_energy_joules / 3.6e6:,.1f}",
                "",
                "",
                "",
                f"{r.lower_bound_energy_joules / 3.6e6:,.1f}",
                "",
                "",
                style="dim",
            )
            doc.append(
                {
                    "trace": name,
                    "jobs": len(trace),
                    "fleet_mode": mode,
                    "build_seconds": t_build,
                    "plan_seconds": t_plan,
                    "horizon_seconds": r.horizon_seconds,
                    "jobs_unplaceable": len(r.unplaceable),
                    "lower_bound_fleet_energy_joules": r.lower_bound_fleet_energy_joules,
                    "policies": [
                        {
                            k: getattr(m, k)
                            for k in (
                                "name",
                                "fleet_energy_joules",
                                "idle_energy_joules",
                                "total_energy_joules",
                                "p95_wait_seconds",
                                "max_wait_seconds",
                                "makespan_seconds",
                            )
                        }
                        for m in r.metrics
                    ],
                    "acceptance": acceptance(r),
                }
            )
    Console(width=180).print(table)
    for d in doc:
        a = d["acceptance"]
        assert isinstance(a, dict)
        print(
            f"{d['trace']} / {d['fleet_mode']}: energy-aware below first-fit {a['below_first_fit']}, "
            f"not above fastest-gpu {a['not_above_fastest_gpu']}, {a['gap_to_fleet_lower_bound']:+.2%} vs the "
            f"fleet bound, p95 wait {a['p95_wait_above_fastest_gpu_seconds'] / 60:+.1f} min vs fastest-gpu; "
            f"{d['jobs_unplaceable']} of {d['jobs']} jobs fit no pool"
        )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
