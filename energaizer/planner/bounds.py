"""Offline lower bounds on the total job energy of any schedule of a trace on a set of pools.

``lower_bound_energy_joules`` (reported): the LP relaxation of the whole-trace assignment with the
time coupling dropped. Every job goes to its least-energy feasible pool; without capacity over
time this LP is integral, so the bound is simply the sum of per-job minima. No policy, however
long it lets jobs wait, can use less job energy (idle energy excluded).

``capacity_bound`` (reported as ``lower_bound_within_makespan_energy_joules``): a tighter LP for
schedules that finish within a horizon H. Each pool can deliver at most ``GPUs x (H - first
submit)`` GPU-seconds, and job j on pool p uses ``gpu_count_j x duration_jp`` of them:

    min sum_jp E_jp x_jp  s.t.  sum_p x_jp = 1,  sum_j g_j d_jp x_jp <= G_p (H - t0),  0 <= x <= 1

It is a valid bound only for schedules with makespan <= H (we use the energy-aware makespan).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix


def per_job_min_bound(energy: np.ndarray, runnable: np.ndarray) -> float:
    """Sum over runnable jobs of the least energy over pools (the time-free LP relaxation)."""
    if not runnable.any():
        return 0.0
    return float(np.min(energy[runnable], axis=1).sum())


def capacity_bound(
    energy: np.ndarray,
    duration: np.ndarray,
    demand: np.ndarray,
    gpus: np.ndarray,
    horizon_s: float,
    runnable: np.ndarray,
) -> float | None:
    """The GPU-seconds LP over ``horizon_s``; None when infeasible (no schedule fits the horizon)."""
    jobs = np.nonzero(runnable)[0]
    if not jobs.size:
        return 0.0
    e = energy[jobs]
    ok = np.isfinite(e)
    rows, cols = np.nonzero(ok)
    k = rows.size
    c = e[rows, cols]
    use = demand[jobs][rows] * duration[jobs][rows, cols]
    a_eq = coo_matrix((np.ones(k), (rows, np.arange(k))), shape=(jobs.size, k)).tocsr()
    a_ub = coo_matrix((use, (cols, np.arange(k))), shape=(gpus.size, k)).tocsr()
    scale = float(c.max()) if c.size and c.max() > 0 else 1.0
    res = linprog(
        c / scale,
        A_ub=a_ub,
        b_ub=gpus * max(horizon_s, 0.0),
        A_eq=a_eq,
        b_eq=np.ones(jobs.size),
        bounds=(0, 1),
        method="highs-ds",
    )
    if res.status != 0:
        return None
    return float(res.fun) * scale
