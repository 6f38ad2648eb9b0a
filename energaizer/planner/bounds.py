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

``fleet_lower_bound`` (reported as ``lower_bound_fleet_energy_joules``): the least fleet energy
(jobs + idle GPUs, :mod:`energaizer.planner.fleet`) of any schedule that finishes within the
common horizon H, which every reported policy does. Static mode: the fleet energy is
``sum_p GPUs_p x idle_p x H`` plus each job's marginal ``M_jp = E_jp - g_j d_jp idle_p``.
Elastic mode: idle energy is >= 0 and pools can scale to zero, so ``M_jp = E_jp`` (idle
excluded). Either way the bound is that constant (0 when elastic) plus the LP

    min sum_jp M_jp x_jp  s.t.  sum_p x_jp = 1,
        sum_{j: s_j >= a} g_j d_jp x_jp <= G_p (t0 + H - a)   for every pool p and cut a,

whose cuts ``a`` are the first submission and the submit-time deciles: the jobs submitted from
``a`` on must run inside ``[a, t0 + H]``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from energaizer.placement.fleet import FleetMode, FleetModel, marginal_fleet_energy


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


def fleet_lower_bound(
    energy: np.ndarray,
    duration: np.ndarray,
    demand: np.ndarray,
    submit: np.ndarray,
    gpus: np.ndarray,
    fleet: FleetModel,
    horizon_s: float,
    runnable: np.ndarray,
) -> float:
    """Least fleet energy of any schedule of the runnable jobs within ``horizon_s`` of the first
    submission (module docstring)."""
    static = fleet.mode is FleetMode.STATIC
    floor = float((gpus * fleet.idle_power_watts).sum() * max(horizon_s, 0.0)) if static else 0.0
    jobs = np.nonzero(runnable)[0]
    if not jobs.size:
        return floor
    cost = (
        marginal_fleet_energy(energy[jobs], duration[jobs], demand[jobs], fleet, clip=False)
        if static
        else energy[jobs]
    )
    rows, cols = np.nonzero(np.isfinite(cost))
    k = rows.size
    c = cost[rows, cols]
    use = demand[jobs][rows] * duration[jobs][rows, cols]
    s = submit[jobs]
    t0 = float(s.min())
    cuts = np.unique(np.concatenate([[t0], np.quantile(s, np.linspace(0.1, 0.9, 9))]))
    a_rows, a_cols, a_vals, b_ub = [], [], [], []
    for i, a in enumerate(cuts):
        sel = s[rows] >= a
        a_rows.append(cols[sel] + i * gpus.size)
        a_cols.append(np.nonzero(sel)[0])
        a_vals.append(use[sel])
        b_ub.append(gpus * max(t0 + horizon_s - a, 0.0))
    a_ub = coo_matrix(
        (np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))),
        shape=(cuts.size * gpus.size, k),
    ).tocsr()
    a_eq = coo_matrix((np.ones(k), (rows, np.arange(k))), shape=(jobs.size, k)).tocsr()
    scale = float(np.abs(c).max()) if c.size and np.abs(c).max() > 0 else 1.0
    res = linprog(
        c / scale,
        A_ub=a_ub,
        b_ub=np.concatenate(b_ub),
        A_eq=a_eq,
        b_eq=np.ones(jobs.size),
        bounds=(0, 1),
        method="highs-ds",
    )
    if res.status != 0:  # no fractional schedule fits the horizon: the time-free relaxation
        return floor + float(np.min(cost, axis=1).sum())
    return floor + float(res.fun) * scale
