"""Placement policies the simulator compares. Each looks at the pending queue (arrival order) and
the free GPUs per pool, and returns a pool per pending job or -1 (wait).

* ``first-fit``: what Kubernetes' default scheduler does with the ``MostAllocated`` scoring
  strategy: jobs in arrival order, each to the feasible pool with room that is already the most
  allocated (ties broken at random with the seed, as kube-scheduler picks at random among equal
  scores); no job blocks the ones behind it. Energy is not looked at.
* ``fastest-gpu``: jobs in arrival order, each to the feasible pool with room where it runs
  shortest.
* ``energy-aware``: the operator's optimiser (:func:`energaizer.placement.solve`) over the oldest
  ``batch_limit`` pending jobs that fit somewhere, minimising the marginal fleet energy of the
  fleet mode (:mod:`energaizer.placement.fleet`; the job energy when no fleet model is given). A
  job only considers pools within ``energy_slack`` of its cheapest pool in the whole inventory
  (it waits for one of them) until it has waited ``max_wait_seconds``; then every feasible pool
  is allowed and the optimiser picks the cheapest that is free. Deadlines win over waiting: once
  waiting longer could make a preferred pool miss the job's deadline, the job takes any feasible
  pool that still meets it (any feasible pool when none does). A job that takes a pool it does
  not prefer (it stopped waiting) also pays that pool's *overflow pressure* (:meth:`EnergyAware.
  overflow_pressure_cost`): the GPU-seconds it takes there, times what a GPU-second of that pool
  has saved the jobs that prefer it, times the pool's busy fraction now; so a job that overflows
  goes to a pool nobody is waiting for rather than fill the scarce pool others need.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from energaizer.placement import FleetMode, FleetModel, PlacementProblem, objective_matrix, solve

POLICY_NAMES: tuple[str, ...] = ("energy-aware", "first-fit", "fastest-gpu")
LOAD_WINDOW_SECONDS = 6 * 3600.0


@dataclass
class Context:
    """What every policy may know: per-job demand and submit time, (J, P) energy/duration/feasible,
    total GPUs per pool and, optionally, per-job deadlines (seconds after submission, NaN = none)."""

    demand: np.ndarray
    submit: np.ndarray
    energy: np.ndarray
    duration: np.ndarray
    feasible: np.ndarray
    total: np.ndarray
    pool_ids: list[str]
    deadline: np.ndarray | None = None


class Policy:
    name = "policy"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def decide(self, pending: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        raise NotImplementedError

    def wake_times(self, job: int) -> list[float]:
        """Times at which this job's options change even if nothing else happens."""
        return []


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
        max_wait_seconds: float = math.inf,
        batch_limit: int = 256,
        time_limit_s: float = 0.2,
        exact_max_vars: int = 0,
        lp_max_vars: int = 0,
        fleet: FleetModel | None = None,
        overflow_pressure: bool = True,
    ) -> None:
        """``exact_max_vars``/``lp_max_vars`` are passed to :func:`solve`; the planner's defaults
        (0: regret greedy with local search, or the exact paths when they are trivial) keep
        thousands of decisions fast; raise them to use LP rounding / the MILP on every batch.
        ``fleet``: minimise that fleet mode's marginal fleet energy (default: the job energy).
        ``overflow_pressure``: charge jobs that take a pool they do not prefer that pool's
        opportunity cost (:meth:`overflow_pressure_cost`)."""
        super().__init__(ctx)
        self.energy_slack = energy_slack
        self.max_wait_seconds = max_wait_seconds
        self.batch_limit = batch_limit
        self.time_limit_s = time_limit_s
        self.exact_max_vars = exact_max_vars
        self.lp_max_vars = lp_max_vars
        self.fleet = fleet
        self.elastic_nodes = (
            fleet is not None and fleet.mode is FleetMode.ELASTIC and fleet.gpus_per_node is not None
        )
        # which pools a job prefers (and waits for) leaves the idle terms out in elastic mode with
        # node sizes: whether a job powers up a node, and whether its GPUs' idle-timeout tail is paid
        # at all (not on a node that stays needed anyway), depends on the moment (state_cost); what
        # does not is the job energy
        self.cost = objective_matrix(
            ctx.energy, ctx.duration, "energy", fleet=None if self.elastic_nodes else fleet, demand=ctx.demand
        )
        self.cost[~ctx.feasible] = np.inf
        best = np.min(self.cost, axis=1, initial=np.inf)
        self.preferred = ctx.feasible & (self.cost <= best[:, None] * (1.0 + energy_slack) + 1e-9)
        # what a job costs if it gives up waiting: its cheapest pool that is not preferred (its
        # dearest preferred pool when every feasible pool is preferred)
        other = np.min(np.where(ctx.feasible & ~self.preferred, self.cost, np.inf), axis=1, initial=np.inf)
        dearest = np.max(np.where(self.preferred, self.cost, -np.inf), axis=1, initial=-np.inf)
        self.fallback = np.where(np.isfinite(other), other, dearest)
        # what a GPU-second of each pool saves the jobs that prefer it (against their fallback):
        # running sums over the jobs submitted so far (``overflow_pressure_cost``)
        self.overflow_pressure = overflow_pressure
        gpu_s = ctx.demand[:, None] * np.where(self.preferred, ctx.duration, 0.0)
        self._saving = np.where(self.preferred, np.maximum(self.fallback[:, None] - self.cost, 0.0), 0.0)
        self._gpu_s = np.nan_to_num(gpu_s)
        self._order = np.argsort(ctx.submit, kind="stable")
        self._seen = 0
        self._saving_sum = np.zeros(ctx.total.size)
        self._gpu_s_sum = np.zeros(ctx.total.size)
        # deadlines: the job stops waiting at the latest start that still lets every preferred pool
        # meet its deadline
        self.due = np.full(ctx.demand.size, np.nan)
        self.urgent_at = np.full(ctx.demand.size, np.inf)
        if ctx.deadline is not None:
            self.due = ctx.submit + ctx.deadline
            slowest = np.max(np.where(self.preferred, ctx.duration, -np.inf), axis=1, initial=-np.inf)
            with np.errstate(invalid="ignore"):
                urgent = self.due - slowest
            self.urgent_at = np.where(np.isfinite(urgent), urgent, np.inf)
        self.running: list[tuple[float, int, float]] = []  # (end, pool, GPUs) of what it started
        self.recent: list[tuple[float, float, int, float]] = []  # (start, end, pool, GPUs), elastic
        # elastic: busy GPUs per pool, averaged over about LOAD_WINDOW_SECONDS
        self.load = np.zeros(ctx.total.size)
        self.last_busy = np.zeros(ctx.total.size)
        self.load_time = float(np.min(ctx.submit, initial=0.0))
        self.solves = 0
        self.solvers: dict[str, int] = {}

    def _hopeless(self, pending: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        """Pending jobs that cannot start on a preferred pool before their wait limit: by the
        predicted ends of the jobs it started, a preferred pool frees enough GPUs for the job and
        for the older jobs waiting for it (each counted on its preferred pools in equal shares)
        only after ``submit + max_wait_seconds``. They stop waiting now instead of at the limit."""
        ctx = self.ctx
        while self.running and self.running[0][0] <= now:
            heapq.heappop(self.running)
        pref = self.preferred[pending]
        share = ctx.demand[pending] / np.maximum(pref.sum(axis=1), 1)
        limit = ctx.submit[pending] + self.max_wait_seconds
        earliest = np.full(pending.size, np.inf)
        for p in range(ctx.total.size):
            on = np.nonzero(pref[:, p])[0]
            if not on.size:
                continue
            ahead = np.cumsum(share[on]) - share[on]  # pending is in arrival order
            needed = ahead + ctx.demand[pending[on]] - free[p]
            ends = sorted((e, d) for e, q, d in self.running if q == p)
            times = np.array([e for e, _ in ends] or [np.inf])
            freed = np.cumsum([d for _, d in ends] or [0.0])
            k = np.searchsorted(freed, needed - 1e-9)
            t = np.where(needed <= 1e-9, now, times[np.minimum(k, times.size - 1)])
            t = np.where(k >= freed.size, np.inf, t)
            t = np.where(needed <= 1e-9, now, t)
            earliest[on] = np.minimum(earliest[on], t)
        return earliest > limit

    def idle_powered_gpus(self, free: np.ndarray, now: float) -> np.ndarray:
        """Elastic: per pool, GPUs on powered nodes that run nothing now. A node is powered while it
        was needed within the idle timeout (jobs packed onto the fewest nodes, as the fleet
        accounting of :mod:`energaizer.planner.fleet` counts them)."""
        assert self.fleet is not None and self.fleet.gpus_per_node is not None
        ctx = self.ctx
        window = now - self.fleet.idle_timeout_seconds
        self.recent = [r for r in self.recent if r[1] > window]
        busy_now = ctx.total - free
        peak = busy_now.copy()
        if self.recent:
            rec = np.array(self.recent)
            start, end, pool, gpus = rec[:, 0], rec[:, 1], rec[:, 2].astype(np.int64), rec[:, 3]
            for p in np.unique(pool):
                on = pool == p
                points = np.concatenate([[window], start[on][start[on] > window]])
                level = (
                    (start[on][None, :] <= points[:, None]) & (end[on][None, :] > points[:, None])
                ) @ gpus[on]
                peak[p] = max(peak[p], float(level.max()))
        per_node = self.fleet.gpus_per_node
        powered = np.minimum(np.ceil(peak / per_node - 1e-9) * per_node, ctx.total)
        return np.maximum(powered - busy_now, 0.0)

    def state_cost(self, jobs: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        """(len(jobs), P) cost now: elastic with node sizes counts the idle GPUs of powered nodes
        (no node to power up there); otherwise the fixed cost. Elastic: priced only for the jobs that
        fit a feasible pool's free GPUs now (inf elsewhere: they cannot start at this moment, and
        the queue of an overloaded cluster holds thousands)."""
        if not self.elastic_nodes or self.fleet is None:
            return self.cost[jobs]
        ctx = self.ctx
        fleet = self.fleet_now(free, now)
        cost = np.full((jobs.size, ctx.total.size), np.inf)
        fits = np.nonzero((ctx.feasible[jobs] & (ctx.demand[jobs, None] <= free[None, :])).any(axis=1))[0]
        if fits.size:
            now_jobs = jobs[fits]
            priced = objective_matrix(
                ctx.energy[now_jobs],
                ctx.duration[now_jobs],
                "energy",
                fleet=fleet,
                demand=ctx.demand[now_jobs],
            )
            priced[~ctx.feasible[now_jobs]] = np.inf
            cost[fits] = priced
        return cost

    def fleet_now(self, free: np.ndarray, now: float) -> FleetModel:
        """Elastic: the fleet model at ``now`` (the idle GPUs of powered nodes, how long those stay
        needed, the pools' recent load, which this call brings up to ``now``)."""
        assert self.fleet is not None
        ctx = self.ctx
        while self.running and self.running[0][0] <= now:
            heapq.heappop(self.running)
        # how long the powered nodes stay needed anyway: the longest remaining run of the jobs on
        # them, plus the idle timeout
        ends = np.zeros(ctx.total.size)
        for end, p, _ in self.running:
            ends[p] = max(ends[p], end - now)
        busy = ctx.total - free
        if now > self.load_time:
            keep = np.exp(-(now - self.load_time) / LOAD_WINDOW_SECONDS)
            self.load = self.load * keep + self.last_busy * (1.0 - keep)
            self.load_time = now
        self.last_busy = busy
        return replace(
            self.fleet,
            idle_powered_gpus=self.idle_powered_gpus(free, now),
            powered_for_seconds=np.where(ends > 0, ends + self.fleet.idle_timeout_seconds, 0.0),
            typical_busy_gpus=self.load,
            typical_busy_seconds=LOAD_WINDOW_SECONDS,
        )

    def overflow_pressure_cost(
        self, jobs: np.ndarray, free: np.ndarray, now: float, base: np.ndarray
    ) -> np.ndarray:
        """(len(jobs), P) opportunity cost of running a job on a pool it does not prefer:
        ``demand_j x duration_jp x saving_p x busy_p``, where ``saving_p`` is what a GPU-second of
        pool p saved the jobs submitted up to ``now`` that prefer it (sum over them of their
        fallback cost less their cost on p, over the sum of their GPU-seconds on p) and ``busy_p``
        the fraction of p's GPUs busy now (before this batch), the chance that such a job will
        want that GPU-second. Zero on the job's preferred pools, on pools within the slack of its
        best by ``base`` (its cost now), and on infeasible pools."""
        ctx = self.ctx
        order = self._order
        while self._seen < order.size and ctx.submit[order[self._seen]] <= now:
            j = order[self._seen]
            self._saving_sum += self._saving[j]
            self._gpu_s_sum += self._gpu_s[j]
            self._seen += 1
        density = np.where(self._gpu_s_sum > 0, self._saving_sum / np.maximum(self._gpu_s_sum, 1e-12), 0.0)
        busy = 1.0 - free / np.maximum(ctx.total, 1.0)
        take = ctx.demand[jobs, None] * ctx.duration[jobs]
        best = np.min(self.cost[jobs], axis=1, initial=np.inf)
        exempt = (
            self.preferred[jobs]
            | ~ctx.feasible[jobs]
            | (base <= best[:, None] * (1.0 + self.energy_slack) + 1e-9)
        )
        with np.errstate(invalid="ignore"):
            out = np.where(exempt, 0.0, take * (density * busy)[None, :])
        return np.nan_to_num(out)

    def wake_times(self, job: int) -> list[float]:
        out = []
        if math.isfinite(self.max_wait_seconds):
            out.append(float(self.ctx.submit[job] + self.max_wait_seconds))
        if math.isfinite(self.urgent_at[job]):
            out.append(float(self.urgent_at[job]))
        return out

    def allowed(self, pending: np.ndarray, now: float, cost: np.ndarray | None = None) -> np.ndarray:
        """(len(pending), P) pools each pending job may take now (the wait limit and deadlines);
        ``cost`` (the cost now, elastic) also admits pools within the slack of the job's best."""
        ctx = self.ctx
        allowed = self.preferred[pending].copy()
        if cost is not None:
            best = np.min(self.cost[pending], axis=1, initial=np.inf)
            allowed |= ctx.feasible[pending] & (cost <= best[:, None] * (1.0 + self.energy_slack) + 1e-9)
        if math.isfinite(self.max_wait_seconds):
            late = now - ctx.submit[pending] >= self.max_wait_seconds
            allowed[late] = ctx.feasible[pending[late]]
        urgent = now >= self.urgent_at[pending]
        if urgent.any():
            jobs = pending[urgent]
            meets = ctx.feasible[jobs] & (now + ctx.duration[jobs] <= self.due[jobs, None] + 1e-9)
            meets[~meets.any(axis=1)] = ctx.feasible[jobs[~meets.any(axis=1)]]
            allowed[urgent] = meets
        return allowed

    def decide(self, pending: np.ndarray, free: np.ndarray, now: float) -> np.ndarray:
        """Place what may go now; then the jobs that would wait in vain (:meth:`_hopeless`, judged
        with the placements just made) take the best of what is left."""
        ctx = self.ctx
        out = np.full(pending.size, -1, dtype=np.int64)
        cost = self.state_cost(pending, free, now) if self.elastic_nodes else None
        allowed = self.allowed(pending, now, cost)
        free = free.copy()
        self._place(pending, allowed, free, now, out, cost)
        if math.isfinite(self.max_wait_seconds):
            waiting = np.nonzero(out < 0)[0]
            if waiting.size and free.max(initial=0.0) > 0:
                hopeless = waiting[self._hopeless(pending[waiting], free, now)]
                if hopeless.size:
                    allowed[hopeless] = ctx.feasible[pending[hopeless]]
                    only = np.zeros(pending.size, dtype=bool)
                    only[hopeless] = True
                    cost = self.state_cost(pending, free, now) if self.elastic_nodes else None
                    self._place(pending, allowed & only[:, None], free, now, out, cost)
        return out

    def _place(
        self,
        pending: np.ndarray,
        allowed: np.ndarray,
        free: np.ndarray,
        now: float,
        out: np.ndarray,
        cost_now: np.ndarray | None = None,
    ) -> None:
        """One optimiser call over the oldest ``batch_limit`` unplaced jobs that fit an allowed
        pool; writes ``out`` and takes the GPUs from ``free``."""
        ctx = self.ctx
        fits = allowed & (ctx.demand[pending, None] <= free[None, :]) & (out < 0)[:, None]
        cand = np.nonzero(fits.any(axis=1))[0][: self.batch_limit]
        if not cand.size:
            return
        jobs = pending[cand]
        # cost relative to the job's fallback, so that a contested pool goes to the jobs that save
        # the most on it, not to the smallest ones (shifted to be >= 0; every placement count pays
        # the same shift per job, and the optimiser places as many jobs as it can first)
        base = self.cost[jobs] if cost_now is None else cost_now[cand]
        if self.overflow_pressure:
            base = base + self.overflow_pressure_cost(jobs, free, now, base)
        rel = np.where(allowed[cand], base - self.fallback[jobs, None], np.inf)
        finite = rel[np.isfinite(rel)]
        cost = rel - min(float(finite.min()), 0.0) if finite.size else rel
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
        for k in np.nonzero(result.assignment >= 0)[0]:
            j, p = int(jobs[k]), int(result.assignment[k])
            free[p] -= ctx.demand[j]
            heapq.heappush(self.running, (float(now + ctx.duration[j, p]), p, float(ctx.demand[j])))
            if self.elastic_nodes:
                self.recent.append((now, float(now + ctx.duration[j, p]), p, float(ctx.demand[j])))


def make_policy(name: str, ctx: Context, *, seed: int = 0, **energy_kw: Any) -> Policy:
    """A policy by name; ``energy_kw`` go to :class:`EnergyAware`."""
    if name == "energy-aware":
        return EnergyAware(ctx, **energy_kw)
    if name == "first-fit":
        return FirstFit(ctx, seed=seed)
    if name == "fastest-gpu":
        return FastestGpu(ctx)
    from energaizer.errors import InvalidInputError

    raise InvalidInputError("--policy", f"unknown policy {name!r}", POLICY_NAMES)
