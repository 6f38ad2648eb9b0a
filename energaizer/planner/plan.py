"""``run_plan``: estimate a trace on a set of pools, simulate every policy, compute the bounds and
the metrics (energy, cost, carbon, makespan, waits, utilisation)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from energaizer.placement.solver import EXACT_MAX_VARS, LP_MAX_VARS
from energaizer.planner.bounds import capacity_bound, per_job_min_bound
from energaizer.planner.costs import CostCache, JobCosts, job_costs
from energaizer.planner.policies import POLICY_NAMES, Context, EnergyAware, make_policy
from energaizer.planner.pools import NodePool
from energaizer.planner.simulate import Schedule, simulate
from energaizer.planner.trace import Trace

J_PER_KWH = 3.6e6


class PlanOptions(BaseModel):
    policies: list[str] = Field(default_factory=lambda: list(POLICY_NAMES))
    price_per_kwh: float = Field(default=0.12, ge=0)
    carbon_g_per_kwh: float = Field(default=400.0, ge=0)
    energy_slack: float = Field(default=0.05, ge=0, description="energy-aware: pools within this of the best")
    max_wait_s: float = Field(default=math.inf, ge=0, description="energy-aware: then any feasible pool")
    batch_limit: int = Field(default=256, ge=1, description="energy-aware: jobs per optimiser call")
    exact_placement: bool = Field(default=False, description="energy-aware: LP rounding / MILP per batch")
    seed: int = Field(default=0, description="first-fit tie-breaking")


class PoolMetrics(BaseModel):
    name: str
    gpu: str
    gpus: int
    jobs: int
    energy_joules: float
    busy_gpu_seconds: float
    utilisation: float
    idle_energy_joules: float


class PolicyMetrics(BaseModel):
    name: str
    total_energy_joules: float = Field(description="job energy (GPU board), idle energy excluded")
    total_energy_kwh: float
    energy_cost: float
    carbon_kg: float
    makespan_seconds: float
    mean_wait_seconds: float
    p95_wait_seconds: float
    max_wait_seconds: float
    jobs_run: int
    deadline_misses: int
    idle_energy_joules: float = Field(
        description="idle power of powered GPUs while not busy, over the makespan"
    )
    gap_to_lower_bound: float | None
    utilisation: dict[str, float]
    pools: list[PoolMetrics]
    simulation_seconds: float
    decisions: int


@dataclass
class PlanResult:
    pools: list[NodePool]
    trace: Trace
    costs: JobCosts
    runnable: np.ndarray
    schedules: dict[str, Schedule]
    metrics: list[PolicyMetrics]
    lower_bound_energy_joules: float
    lower_bound_within_makespan_energy_joules: float | None
    options: PlanOptions
    unplaceable: list[tuple[str, str]] = field(default_factory=list)
    solver_calls: dict[str, int] = field(default_factory=dict)

    def policy(self, name: str) -> PolicyMetrics:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


def _metrics(
    sched: Schedule,
    trace: Trace,
    pools: Sequence[NodePool],
    costs: JobCosts,
    opts: PlanOptions,
    bound: float,
) -> PolicyMetrics:
    from energaizer.catalog import get_gpu

    ran = sched.pool >= 0
    t0 = float(trace.submit[ran].min()) if ran.any() else 0.0
    makespan = float(np.nanmax(sched.end[ran]) - t0) if ran.any() else 0.0
    wait = sched.start[ran] - trace.submit[ran]
    total = float(sched.energy[ran].sum())
    dur = sched.end - sched.start
    pool_rows: list[PoolMetrics] = []
    idle_total = 0.0
    for p, pool in enumerate(pools):
        on = sched.pool == p
        busy = float((dur[on] * trace.gpu_count[on]).sum())
        cap = pool.gpus * makespan
        idle_w = get_gpu(pool.gpu).idle_power_w
        idle = max(cap - busy, 0.0) * idle_w
        idle_total += idle
        pool_rows.append(
            PoolMetrics(
                name=pool.name,
                gpu=pool.gpu,
                gpus=pool.gpus,
                jobs=int(on.sum()),
                energy_joules=float(sched.energy[on].sum()),
                busy_gpu_seconds=busy,
                utilisation=busy / cap if cap > 0 else 0.0,
                idle_energy_joules=idle,
            )
        )
    with np.errstate(invalid="ignore"):
        misses = int(
            (np.isfinite(trace.deadline) & ran & (sched.end - trace.submit > trace.deadline + 1e-6)).sum()
        )
    kwh = total / J_PER_KWH
    return PolicyMetrics(
        name=sched.policy,
        total_energy_joules=total,
        total_energy_kwh=kwh,
        energy_cost=kwh * opts.price_per_kwh,
        carbon_kg=kwh * opts.carbon_g_per_kwh / 1000.0,
        makespan_seconds=makespan,
        mean_wait_seconds=float(wait.mean()) if wait.size else 0.0,
        p95_wait_seconds=float(np.percentile(wait, 95)) if wait.size else 0.0,
        max_wait_seconds=float(wait.max()) if wait.size else 0.0,
        jobs_run=int(ran.sum()),
        deadline_misses=misses,
        idle_energy_joules=idle_total,
        gap_to_lower_bound=(total - bound) / bound if bound > 0 else None,
        utilisation={r.name: r.utilisation for r in pool_rows},
        pools=pool_rows,
        simulation_seconds=sched.seconds,
        decisions=sched.decisions,
    )


def run_plan(
    trace: Trace,
    pools: Sequence[NodePool],
    options: PlanOptions | None = None,
    *,
    cache: CostCache | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> PlanResult:
    """Simulate ``options.policies`` on ``trace`` over ``pools``; ``progress(policy, finished)``."""
    opts = options or PlanOptions()
    pools = list(pools)
    costs = job_costs(trace, pools, cache or CostCache())
    runnable = costs.feasible.any(axis=1)
    ctx = Context(
        demand=trace.gpu_count.astype(float),
        submit=trace.submit,
        energy=costs.energy,
        duration=costs.duration,
        feasible=costs.feasible,
        total=np.array([p.gpus for p in pools], dtype=float),
        pool_ids=[p.name for p in pools],
    )
    bound = per_job_min_bound(costs.energy, runnable)
    schedules: dict[str, Schedule] = {}
    metrics: list[PolicyMetrics] = []
    solver_calls: dict[str, int] = {}
    for name in opts.policies:
        policy = make_policy(
            name,
            ctx,
            seed=opts.seed,
            energy_slack=opts.energy_slack,
            max_wait_s=opts.max_wait_s,
            batch_limit=opts.batch_limit,
            **(
                {"exact_max_vars": EXACT_MAX_VARS, "lp_max_vars": LP_MAX_VARS} if opts.exact_placement else {}
            ),
        )
        cb = (lambda done, _n=name: progress(_n, done)) if progress is not None else None
        sched = simulate(policy, runnable=runnable, progress=cb)
        schedules[name] = sched
        metrics.append(_metrics(sched, trace, pools, costs, opts, bound))
        if isinstance(policy, EnergyAware):
            solver_calls = dict(policy.solvers)
    horizon_bound = None
    if "energy-aware" in schedules:
        ea = next(m for m in metrics if m.name == "energy-aware")
        horizon_bound = capacity_bound(
            costs.energy,
            costs.duration,
            trace.gpu_count.astype(float),
            ctx.total,
            ea.makespan_seconds,
            runnable,
        )
    unplaceable = [(trace.job_ids[j], costs.job_reason(trace, j, pools)) for j in np.nonzero(~runnable)[0]]
    return PlanResult(
        pools=pools,
        trace=trace,
        costs=costs,
        runnable=runnable,
        schedules=schedules,
        metrics=metrics,
        lower_bound_energy_joules=bound,
        lower_bound_within_makespan_energy_joules=horizon_bound,
        options=opts,
        unplaceable=unplaceable,
        solver_calls=solver_calls,
    )


@dataclass
class SweepPoint:
    pool: str
    power_limit_w: float
    result: PlanResult


def run_power_sweeps(
    trace: Trace,
    pools: Sequence[NodePool],
    limits: dict[str, list[float]],
    options: PlanOptions | None = None,
    *,
    cache: CostCache | None = None,
) -> list[SweepPoint]:
    """One plan per (pool, power limit): that pool's GPUs capped at the limit, the rest unchanged."""
    cache = cache or CostCache()
    out: list[SweepPoint] = []
    for name, watts in limits.items():
        for w in watts:
            variant = [p.model_copy(update={"power_limit_w": w}) if p.name == name else p for p in pools]
            out.append(SweepPoint(name, w, run_plan(trace, variant, options, cache=cache)))
    return out
