"""Placement policies the simulator compares. Each looks at the pending queue (arrival order) and
the free GPUs per pool, and returns a pool per pending job or -1 (wait).

* ``first-fit``: what Kubernetes' default scheduler does with the ``MostAllocated`` scoring
  strategy: jobs in arrival order, each to the feasible pool with room that is already the most
  allocated (ties broken at random with the seed, as kube-scheduler picks at random among equal
  scores); no job blocks the ones behind it. Energy is not looked at.
* ``fastest-gpu``: jobs in arrival order, each to the feasible pool with room where it runs
  shortest.
* ``energy-aware``: the operator's optimiser (:func:`energaizer.placement.solve`) on energy, over
  the oldest ``batch_limit`` pending jobs that fit somewhere. A job only considers pools within
  ``energy_slack`` of its least-energy pool in the whole inventory (it waits for one of them),
  until it has waited ``max_wait_s``; then every feasible pool is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from energaizer.placement import PlacementProblem, solve

POLICY_NAMES: tuple[str, ...] = ("energy-aware", "first-fit", "fastest-gpu")


@dataclass
class Context:
    """What every policy may know: per-job demand and submit time, (J, P) energy/duration/feasible,
    and total GPUs per pool."""

    demand: np.ndarray
    submit: np.ndarray
    energy: np.ndarray
    duration: np.ndarray
    feasible: np.ndarray
    total: np.ndarray
    pool_ids: list[str]


class Policy:
    name = "policy"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def decide(self, pending: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        raise NotImplementedError

    def wake_time(self, job: int) -> float | None:
        """A time at which this job's options change even if nothing else happens (or None)."""
        return None


class _Sequential(Policy):
    """Arrival order, one job at a time; subclasses score the pools that fit."""

    def score(self, job: int, fits: np.ndarray, free: np.ndarray) -> int:
        raise NotImplementedError

    def decide(self, pending: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        ctx = self.ctx
        out = np.full(pending.size, -1, dtype=np.int64)
        demand = ctx.demand[pending]
        min_demand = float(demand.min()) if demand.size else 0.0
        free = free.copy()
        if free.max(initial=0.0) < min_demand:
            return out
        fits0 = ctx.feasible[pending] & (demand[:, None] <= free[None, :])
        for k in np.nonzero(fits0.any(axis=1))[0]:
            j = int(pending[k])
            fits = ctx.feasible[j] & (ctx.demand[j] <= free)
            if not fits.any():
                continue
            p = self.score(j, fits, free)
            out[k] = p
            free[p] -= ctx.demand[j]
            if free.max() < min_demand:
                break
        return out


class FirstFit(_Sequential):
    name = "first-fit"

    def __init__(self, ctx: Context, *, seed: int = 0) -> None:
        super().__init__(ctx)
        self.rng = np.random.default_rng(seed)

    def score(self, job: int, fits: np.ndarray, free: np.ndarray) -> int:
        allocated = np.where(fits, 1.0 - free / np.maximum(self.ctx.total, 1.0), -np.inf)
        top = np.nonzero(allocated >= allocated.max() - 1e-12)[0]
        return int(top[0] if top.size == 1 else top[self.rng.integers(top.size)])


class FastestGpu(_Sequential):
    name = "fastest-gpu"

    def score(self, job: int, fits: np.ndarray, free: np.ndarray) -> int:
        return int(np.argmin(np.where(fits, self.ctx.duration[job], np.inf)))


class EnergyAware(Policy):
    name = "energy-aware"

    def __init__(
        self,
        ctx: Context,
        *,
        energy_slack: float = 0.05,
        max_wait_s: float = math.inf,
        batch_limit: int = 256,
        time_limit_s: float = 0.2,
        exact_max_vars: int = 0,
        lp_max_vars: int = 0,
    ) -> None:
        """``exact_max_vars``/``lp_max_vars`` are passed to :func:`solve`; the planner's defaults
        (0: regret greedy with local search, or the exact paths when they are trivial) keep
        thousands of decisions fast; raise them to use LP rounding / the MILP on every batch."""
        super().__init__(ctx)
        self.energy_slack = energy_slack
        self.max_wait_s = max_wait_s
        self.batch_limit = batch_limit
        self.time_limit_s = time_limit_s
        self.exact_max_vars = exact_max_vars
        self.lp_max_vars = lp_max_vars
        best = np.min(ctx.energy, axis=1, initial=np.inf)
        self.preferred = ctx.feasible & (ctx.energy <= best[:, None] * (1.0 + energy_slack))
        self.solves = 0
        self.solvers: dict[str, int] = {}

    def wake_time(self, job: int) -> float | None:
        if math.isfinite(self.max_wait_s):
            return float(self.ctx.submit[job] + self.max_wait_s)
        return None

    def decide(self, pending: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        ctx = self.ctx
        out = np.full(pending.size, -1, dtype=np.int64)
        allowed = self.preferred[pending]
        if math.isfinite(self.max_wait_s):
            late = now - ctx.submit[pending] >= self.max_wait_s
            if late.any():
                allowed = allowed.copy()
                allowed[late] = ctx.feasible[pending[late]]
        fits = allowed & (ctx.demand[pending, None] <= free[None, :])
        cand = np.nonzero(fits.any(axis=1))[0][: self.batch_limit]
        if not cand.size:
            return out
        jobs = pending[cand]
        cost = np.where(allowed[cand], ctx.energy[jobs], np.inf)
        problem = PlacementProblem(
            job_ids=[str(j) for j in jobs],
            type_ids=ctx.pool_ids,
            cost=cost,
            demand=ctx.demand[jobs].astype(float),
            capacity=free.astype(float),
        )
        result = solve(
            problem,
            time_limit_s=self.time_limit_s,
            exact_max_vars=self.exact_max_vars,
            lp_max_vars=self.lp_max_vars,
        )
        self.solves += 1
        self.solvers[result.solver] = self.solvers.get(result.solver, 0) + 1
        out[cand] = result.assignment
        return out


def make_policy(name: str, ctx: Context, *, seed: int = 0, **energy_kw: float) -> Policy:
    """A policy by name; ``energy_kw`` go to :class:`EnergyAware`."""
    if name == "energy-aware":
        return EnergyAware(ctx, **energy_kw)  # type: ignore[arg-type]
    if name == "first-fit":
        return FirstFit(ctx, seed=seed)
    if name == "fastest-gpu":
        return FastestGpu(ctx)
    from energaizer.errors import InvalidInputError

    raise InvalidInputError("--policy", f"unknown policy {name!r}", POLICY_NAMES)
