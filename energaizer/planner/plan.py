"""``run_plan``: estimate a trace on a set of pools, simulate every policy, compute the bounds and
the metrics (job and fleet energy, cost, carbon, makespan, waits, utilisation) over one horizon
common to every policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from energaizer.placement.fleet import DEFAULT_IDLE_TIMEOUT_SECONDS, FleetMode, FleetModel
from energaizer.placement.solver import EXACT_MAX_VARS, LP_MAX_VARS
from energaizer.planner.bounds import capacity_bound, fleet_lower_bound, per_job_min_bound
from energaizer.planner.costs import CostCache, JobCosts, job_costs
from energaizer.planner.fleet import pool_idle_gpu_seconds
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
    max_wait_seconds: float = Field(
        default=900.0, ge=0, description="energy-aware: wait at most this for a preferred pool, then any"
    )
    fleet_mode: FleetMode = Field(default=FleetMode.STATIC, description="what idle GPUs cost")
    idle_timeout_seconds: float = Field(
        default=DEFAULT_IDLE_TIMEOUT_SECONDS, ge=0, le=1e7, description="elastic: node scale-down delay"
    )
    batch_limit: int = Field(default=256, ge=1, description="energy-aware: jobs per optimiser call")
    exact_placement: bool = Field(default=False, description="energy-aware: LP rounding / MILP per batch")
    overflow_pressure: bool = Field(
        default=True,
        description="energy-aware: a job that takes a pool it does not prefer pays its opportunity cost",
    )
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


def _p95(x: np.ndarray) -> float:
    return float(np.percentile(x, 95)) if x.size else 0.0


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
        description="idle power of powered GPUs while they run no job, over the common horizon"
    )
    fleet_energy_joules: float = Field(description="job energy + idle energy over the common horizon")
    fleet_energy_kwh: float
    fleet_energy_cost: float
    fleet_carbon_kg: float
    fleet_energy_vs_energy_aware: float | None = Field(
        description="(fleet energy - energy-aware's) / energy-aware's; None without energy-aware"
    )
    gap_to_lower_bound: float | None
    gap_to_fleet_lower_bound: float | None
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
    horizon_seconds: float
    lower_bound_fleet_energy_joules: float
    unplaceable: list[tuple[str, str]] = field(default_factory=list)
    solver_calls: dict[str, int] = field(default_factory=dict)

    def policy(self, name: str) -> PolicyMetrics:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


def common_horizon(schedules: Sequence[Schedule], t0: float, opts: PlanOptions) -> float:
    """Seconds from the first submission that every policy's fleet energy is counted over: the
    longest makespan, plus the idle timeout in elastic mode (so every pool has scaled down)."""
    ends = [float(np.nanmax(s.end[s.pool >= 0])) for s in schedules if (s.pool >= 0).any()]
    horizon = max(ends, default=t0) - t0
    if opts.fleet_mode is FleetMode.ELASTIC:
        horizon += opts.idle_timeout_seconds
    return max(horizon, 0.0)


def _metrics(
    sched: Schedule,
    trace: Trace,
    pools: Sequence[NodePool],
    opts: PlanOptions,
    bounds: tuple[float, float],
    t0: float,
    horizon: float,
) -> PolicyMetrics:
    from energaizer.catalog import get_gpu

    bound, fleet_bound = bounds
    ran = sched.pool >= 0
    makespan = float(np.nanmax(sched.end[ran]) - t0) if ran.any() else 0.0
    wait = sched.start[ran] - trace.submit[ran]
    total = float(sched.energy[ran].sum())
    dur = sched.end - sched.start
    demand = trace.gpu_count.astype(float)
    pool_rows: list[PoolMetrics] = []
    idle_total = 0.0
    for p, pool in enumerate(pools):
        on = sched.pool == p
        busy = float((dur[on] * demand[on]).sum())
        cap = pool.gpus * horizon
        idle_s = pool_idle_gpu_seconds(
            sched.start[on],
            sched.end[on],
            demand[on],
            gpus_per_node=pool.gpus_per_node,
            nodes=pool.nodes,
            mode=opts.fleet_mode,
            horizon_start=t0,
            horizon_end=t0 + horizon,
            idle_timeout_seconds=opts.idle_timeout_seconds,
        )
        idle = idle_s * get_gpu(pool.gpu).idle_power_w
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
    fleet = total + idle_total
    return PolicyMetrics(
        name=sched.policy,
        total_energy_joules=total,
        total_energy_kwh=kwh,
        energy_cost=kwh * opts.price_per_kwh,
        carbon_kg=kwh * opts.carbon_g_per_kwh / 1000.0,
        makespan_seconds=makespan,
        mean_wait_seconds=float(wait.mean()) if wait.size else 0.0,
        p95_wait_seconds=_p95(wait),
        max_wait_seconds=float(wait.max()) if wait.size else 0.0,
        jobs_run=int(ran.sum()),
        deadline_misses=misses,
        idle_energy_joules=idle_total,
        fleet_energy_joules=fleet,
        fleet_energy_kwh=fleet / J_PER_KWH,
        fleet_energy_cost=fleet / J_PER_KWH * opts.price_per_kwh,
        fleet_carbon_kg=fleet / J_PER_KWH * opts.carbon_g_per_kwh / 1000.0,
        fleet_energy_vs_energy_aware=None,
        gap_to_lower_bound=(total - bound) / bound if bound > 0 else None,
        gap_to_fleet_lower_bound=(fleet - fleet_bound) / fleet_bound if fleet_bound > 0 else None,
        utilisation={r.name: r.utilisation for r in pool_rows},
        pools=pool_rows,
        simulation_seconds=sched.seconds,
        decisions=sched.decisions,
    )


def fleet_model(pools: Sequence[NodePool], opts: PlanOptions) -> FleetModel:
    from energaizer.catalog import get_gpu

    return FleetModel(
        mode=opts.fleet_mode,
        idle_power_watts=np.array([get_gpu(p.gpu).idle_power_w for p in pools], dtype=float),
        idle_timeout_seconds=opts.idle_timeout_seconds,
        gpus_per_node=np.array([p.gpus_per_node for p in pools], dtype=float),
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
        deadline=trace.deadline,
    )
    fleet = fleet_model(pools, opts)
    bound = per_job_min_bound(costs.energy, runnable)
    schedules: dict[str, Schedule] = {}
    solver_calls: dict[str, int] = {}
    for name in opts.policies:
        policy = make_policy(
            name,
            ctx,
            seed=opts.seed,
            energy_slack=opts.energy_slack,
            max_wait_seconds=opts.max_wait_seconds,
            batch_limit=opts.batch_limit,
            fleet=fleet,
            overflow_pressure=opts.overflow_pressure,
            **(
                {"exact_max_vars": EXACT_MAX_VARS, "lp_max_vars": LP_MAX_VARS} if opts.exact_placement else {}
            ),
        )
        cb = (lambda done, _n=name: progress(_n, done)) if progress is not None else None
        schedules[name] = simulate(policy, runnable=runnable, progress=cb)
        if isinstance(policy, EnergyAware):
            solver_calls = dict(policy.solvers)
    t0 = float(trace.submit[runnable].min()) if runnable.any() else 0.0
    horizon = common_horizon(list(schedules.values()), t0, opts)
    gpus = np.array([p.gpus for p in pools], dtype=float)
    fleet_bound = fleet_lower_bound(
        costs.energy, costs.duration, ctx.demand, trace.submit, gpus, fleet, horizon, runnable
    )
    metrics = [_metrics(s, trace, pools, opts, (bound, fleet_bound), t0, horizon) for s in schedules.values()]
    ea_fleet = next((m.fleet_energy_joules for m in metrics if m.name == "energy-aware"), None)
    if ea_fleet:
        for m in metrics:
            m.fleet_energy_vs_energy_aware = (m.fleet_energy_joules - ea_fleet) / ea_fleet
    horizon_bound = None
    if "energy-aware" in schedules:
        ea = next(m for m in metrics if m.name == "energy-aware")
        horizon_bound = capacity_bound(
            costs.energy,
            costs.duration,
            ctx.demand,
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
        horizon_seconds=horizon,
        lower_bound_fleet_energy_joules=fleet_bound,
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
