"""Event-driven simulation of one policy over a trace: jobs arrive, wait in a FIFO queue, start on
the pool the policy picks (taking ``gpu_count`` of its GPUs), run for their estimated duration on
that pool and free the GPUs when they finish. Capacity is counted in GPUs per pool (a job may span
nodes of its pool; node fragmentation is not modelled)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from energaizer.planner.policies import Policy


@dataclass
class Schedule:
    """Per job: pool index (-1 = never ran), start and end time (NaN when it never ran)."""

    policy: str
    pool: np.ndarray
    start: np.ndarray
    end: np.ndarray
    energy: np.ndarray  # joules of the run (0 when it never ran)
    decisions: int
    seconds: float


ProgressFn = Callable[[int], None]


def simulate(
    policy: Policy,
    *,
    runnable: np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> Schedule:
    """Run ``policy`` on its context's jobs (sorted by submit time). ``runnable`` (bool per job,
    default: feasible on some pool) selects the jobs that enter the queue; the rest never run.
    ``progress`` is called with the number of jobs finished so far."""
    import time

    t0 = time.perf_counter()
    ctx = policy.ctx
    n = ctx.demand.size
    submit = ctx.submit
    demand = ctx.demand.astype(float)
    if runnable is None:
        runnable = ctx.feasible.any(axis=1)
    free = ctx.total.astype(float).copy()
    pool = np.full(n, -1, dtype=np.int64)
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    energy = np.zeros(n)
    arrivals = np.nonzero(runnable)[0]
    arrivals = arrivals[np.argsort(submit[arrivals], kind="stable")]
    running: list[tuple[float, int]] = []
    wakeups: list[float] = []
    pending = np.zeros(0, dtype=np.int64)  # queued jobs in arrival order
    arrived: list[int] = []  # arrivals not yet appended to ``pending``
    nxt = 0
    finished = 0
    decisions = 0
    while nxt < arrivals.size or running or pending.size or arrived:
        t_arr = submit[arrivals[nxt]] if nxt < arrivals.size else math.inf
        t_end = running[0][0] if running else math.inf
        t_wake = wakeups[0] if wakeups else math.inf
        now = min(t_arr, t_end, t_wake)
        if not math.isfinite(now):
            break  # pending jobs that can never start (should not happen: each fits an empty pool)
        while running and running[0][0] <= now:
            _, j = heapq.heappop(running)
            free[pool[j]] += demand[j]
            finished += 1
        while wakeups and wakeups[0] <= now:
            heapq.heappop(wakeups)
        while nxt < arrivals.size and submit[arrivals[nxt]] <= now:
            j = int(arrivals[nxt])
            arrived.append(j)
            for wake in policy.wake_times(j):
                if wake > now:
                    heapq.heappush(wakeups, wake)
            nxt += 1
        if arrived:
            pending = np.concatenate([pending, np.asarray(arrived, dtype=np.int64)])
            arrived = []
        if pending.size:
            queue = pending
            choice = policy.decide(queue, free, now)
            decisions += 1
            started = choice >= 0
            if started.any():
                for k in np.nonzero(started)[0]:
                    j, p = int(queue[k]), int(choice[k])
                    if not ctx.feasible[j, p] or demand[j] > free[p] + 1e-9:
                        raise RuntimeError(f"policy {policy.name} placed job {j} on pool {p} without room")
                    free[p] -= demand[j]
                    pool[j] = p
                    start[j] = now
                    end[j] = now + ctx.duration[j, p]
                    energy[j] = ctx.energy[j, p]
                    heapq.heappush(running, (float(end[j]), j))
                pending = queue[~started]
        if progress is not None:
            progress(finished)
    return Schedule(policy.name, pool, start, end, energy, decisions, time.perf_counter() - t0)
