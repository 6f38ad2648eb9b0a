"""Plan results -> JSON document, rich table and CSV rows."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from energaizer.placement.fleet import FleetMode
from energaizer.planner.plan import J_PER_KWH, PlanOptions, PlanResult, SweepPoint

LOWER_BOUND_DEFINITION = (
    "LP relaxation of the whole-trace assignment without time coupling: each job on its "
    "least-energy feasible pool (job energy only, idle excluded); no schedule can use less"
)
FLEET_LOWER_BOUND_DEFINITION = (
    "least fleet energy (jobs + idle GPUs) of any schedule that finishes within the common horizon: "
    "static = every GPU's idle power over the horizon + an LP of each job's energy above its GPUs' "
    "idle power, with each pool's GPU-seconds limited over the horizon; elastic = the same LP on "
    "the job energy (idle >= 0)"
)
WITHIN_MAKESPAN_DEFINITION = (
    "LP with GPU-seconds capacity per pool over the energy-aware makespan: valid for schedules "
    "that finish no later than energy-aware"
)


def fleet_headline(opts: PlanOptions) -> str:
    """The fleet mode in words, for titles."""
    if opts.fleet_mode is FleetMode.ELASTIC:
        return f"elastic fleet: nodes scale down after {_fmt_s(opts.idle_timeout_seconds)} idle"
    return "static fleet: every GPU powered all the time"


def _pool_json(result: PlanResult) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "gpu": p.gpu,
            "nodes": p.nodes,
            "gpus_per_node": p.gpus_per_node,
            "gpus": p.gpus,
            "frequency_mhz": p.frequency_mhz,
            "power_limit_w": p.power_limit_w,
        }
        for p in result.pools
    ]


def _policies_json(result: PlanResult) -> list[dict[str, Any]]:
    return [m.model_dump() for m in result.metrics]


def to_json(result: PlanResult, sweeps: Sequence[SweepPoint] = (), seed: int | None = None) -> dict[str, Any]:
    trace = result.trace
    ran = result.runnable
    span = float(trace.submit.max() - trace.submit.min()) if len(trace) else 0.0
    opts = result.options
    doc: dict[str, Any] = {
        "policies": _policies_json(result),
        "fleet_mode": opts.fleet_mode.value,
        "idle_timeout_seconds": opts.idle_timeout_seconds,
        "horizon_seconds": result.horizon_seconds,
        "lower_bound_fleet_energy_joules": result.lower_bound_fleet_energy_joules,
        "lower_bound_fleet_energy_kwh": result.lower_bound_fleet_energy_joules / J_PER_KWH,
        "lower_bound_energy_joules": result.lower_bound_energy_joules,
        "lower_bound_energy_kwh": result.lower_bound_energy_joules / J_PER_KWH,
        "lower_bound": {
            "energy_joules": result.lower_bound_energy_joules,
            "definition": LOWER_BOUND_DEFINITION,
            "within_makespan_energy_joules": result.lower_bound_within_makespan_energy_joules,
            "within_makespan_definition": WITHIN_MAKESPAN_DEFINITION,
            "fleet_energy_joules": result.lower_bound_fleet_energy_joules,
            "fleet_definition": FLEET_LOWER_BOUND_DEFINITION,
        },
        "pools": _pool_json(result),
        "trace": {
            "source": trace.source,
            "jobs": len(trace),
            "jobs_placeable": int(ran.sum()),
            "jobs_unplaceable": int((~ran).sum()),
            "distinct_workloads": len(trace.workloads),
            "submit_span_seconds": span,
            "gpu_count_total": int(trace.gpu_count.sum()),
        },
        "unplaceable_jobs": [{"job_id": j, "reason": r} for j, r in result.unplaceable[:50]],
        "prices": {
            "price_per_kwh": result.options.price_per_kwh,
            "carbon_g_per_kwh": result.options.carbon_g_per_kwh,
        },
        "energy_aware": {
            "energy_slack": result.options.energy_slack,
            "max_wait_seconds": (
                result.options.max_wait_seconds if math.isfinite(result.options.max_wait_seconds) else None
            ),
            "batch_limit": result.options.batch_limit,
            "exact_placement": result.options.exact_placement,
            "solver_calls": result.solver_calls,
        },
        "energy_accounting": "total_energy_joules is GPU board energy of the jobs (estimator); "
        "idle_energy_joules is the idle power of every powered pool GPU while it runs no job, over the "
        "common horizon_seconds (static: every GPU powered; elastic: nodes removed after "
        "idle_timeout_seconds without a job); fleet_energy_joules is their sum",
        "assumptions": list(trace.assumptions),
        "seed": seed,
    }
    if sweeps:
        doc["sweeps"] = [
            {
                "pool": s.pool,
                "power_limit_w": s.power_limit_w,
                "lower_bound_energy_joules": s.result.lower_bound_energy_joules,
                "lower_bound_fleet_energy_joules": s.result.lower_bound_fleet_energy_joules,
                "horizon_seconds": s.result.horizon_seconds,
                "policies": _policies_json(s.result),
            }
            for s in sweeps
        ]
    return doc


CSV_FIELDS = (
    "scenario",
    "policy",
    "fleet_energy_joules",
    "total_energy_joules",
    "total_energy_kwh",
    "energy_cost",
    "carbon_kg",
    "makespan_seconds",
    "mean_wait_seconds",
    "p95_wait_seconds",
    "max_wait_seconds",
    "jobs_run",
    "deadline_misses",
    "idle_energy_joules",
    "gap_to_lower_bound",
    "fleet_energy_vs_energy_aware",
    "lower_bound_energy_joules",
    "lower_bound_fleet_energy_joules",
    "horizon_seconds",
    "fleet_mode",
)


def _csv_rows(scenario: str, result: PlanResult) -> list[dict[str, Any]]:
    rows = []
    for m in result.metrics:
        row = {k: getattr(m, k) for k in CSV_FIELDS if hasattr(m, k)}
        row.update(
            scenario=scenario,
            policy=m.name,
            lower_bound_energy_joules=result.lower_bound_energy_joules,
            lower_bound_fleet_energy_joules=result.lower_bound_fleet_energy_joules,
            horizon_seconds=result.horizon_seconds,
            fleet_mode=result.options.fleet_mode.value,
        )
        for pool, u in m.utilisation.items():
            row[f"utilisation_{pool}"] = u
        rows.append(row)
    return rows


def write_csv(path: str | Path, result: PlanResult, sweeps: Sequence[SweepPoint] = ()) -> None:
    rows = _csv_rows("base", result)
    for s in sweeps:
        rows.extend(_csv_rows(f"{s.pool}@{s.power_limit_w:g}W", s.result))
    fields = list(CSV_FIELDS)
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _fmt_kwh(j: float) -> str:
    return f"{j / J_PER_KWH:,.1f}"


def _fmt_s(s: float) -> str:
    if not math.isfinite(s):
        return "no limit"
    if s >= 3600:
        return f"{s / 3600:,.1f} h"
    if s >= 60:
        return f"{s / 60:,.1f} min"
    return f"{s:,.0f} s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def render_table(result: PlanResult, title: str) -> Any:
    from rich.table import Table

    opts = result.options
    table = Table(title=title)
    table.add_column("policy", no_wrap=True, min_width=12)
    for col in (
        "fleet kWh",
        "vs energy-aware",
        "vs fleet bound",
        "idle kWh",
        "job kWh",
        "fleet cost",
        "fleet CO2 kg",
        "makespan",
        "mean wait",
        "p95 wait",
        "max wait",
    ):
        table.add_column(col, justify="right")
    for m in result.metrics:
        fleet_kwh = m.fleet_energy_joules / J_PER_KWH
        table.add_row(
            m.name,
            f"{fleet_kwh:,.1f}",
            "-" if m.name == "energy-aware" else _pct(m.fleet_energy_vs_energy_aware),
            _pct(m.gap_to_fleet_lower_bound),
            _fmt_kwh(m.idle_energy_joules),
            f"{m.total_energy_kwh:,.1f}",
            f"{m.fleet_energy_cost:,.2f}",
            f"{m.fleet_carbon_kg:,.1f}",
            _fmt_s(m.makespan_seconds),
            _fmt_s(m.mean_wait_seconds),
            _fmt_s(m.p95_wait_seconds),
            _fmt_s(m.max_wait_seconds),
        )
    lb = result.lower_bound_fleet_energy_joules
    table.add_row(
        "lower-bound",
        _fmt_kwh(lb),
        "-",
        "0.0%",
        "-",
        _fmt_kwh(result.lower_bound_energy_joules),
        f"{lb / J_PER_KWH * opts.price_per_kwh:,.2f}",
        f"{lb / J_PER_KWH * opts.carbon_g_per_kwh / 1000:,.1f}",
        "-",
        "-",
        "-",
        "-",
        style="dim",
    )
    table.caption = (
        f"fleet energy = jobs + idle GPUs over one horizon of {_fmt_s(result.horizon_seconds)} for every "
        f"policy ({fleet_headline(opts)}); GPU board energy; cost and CO2 of the fleet energy at "
        f"{opts.price_per_kwh:g}/kWh and {opts.carbon_g_per_kwh:g} g/kWh; energy-aware waits at most "
        f"{_fmt_s(opts.max_wait_seconds)} for its best type; lower bound: fleet = least fleet energy "
        "within the horizon (LP), job = each job on its least-energy pool"
    )
    return table


def render_utilisation_table(result: PlanResult) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="GPU utilisation over the common horizon")
    table.add_column("policy", no_wrap=True, min_width=12)
    for p in result.pools:
        table.add_column(escape(f"{p.name} ({p.gpus})"), justify="right")  # a pool name: text, not markup
    table.add_column("idle kWh", justify="right")
    for m in result.metrics:
        table.add_row(m.name, *(f"{p.utilisation:.0%}" for p in m.pools), _fmt_kwh(m.idle_energy_joules))
    return table


def render_sweep_table(sweeps: Sequence[SweepPoint]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="power-limit sweep")
    for col in (
        "pool",
        "power limit",
        "policy",
        "fleet kWh",
        "job kWh",
        "makespan",
        "p95 wait",
        "fleet bound kWh",
    ):
        table.add_column(col, justify="left" if col in ("pool", "policy") else "right")
    for s in sweeps:
        for m in s.result.metrics:
            table.add_row(
                escape(s.pool),
                f"{s.power_limit_w:g} W",
                m.name,
                _fmt_kwh(m.fleet_energy_joules),
                f"{m.total_energy_kwh:,.1f}",
                _fmt_s(m.makespan_seconds),
                _fmt_s(m.p95_wait_seconds),
                _fmt_kwh(s.result.lower_bound_fleet_energy_joules),
            )
    return table
