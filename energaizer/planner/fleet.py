"""Fleet energy of a schedule: the jobs' energy plus what the pools' idle GPUs draw, over one horizon
that is the same for every policy (so a policy cannot look cheaper by leaving GPUs idle longer).

* ``static`` (GPUs always powered): every GPU of every pool draws its idle power over the whole
  horizon whenever it runs no job: ``(GPUs x horizon - busy GPU-seconds) x idle_power``.
* ``elastic`` (node pools scale down after ``idle_timeout_seconds``): jobs are packed onto the
  fewest nodes (``ceil(busy GPUs / GPUs per node)`` are needed at any time, node fragmentation is
  not modelled, as in the simulator), and a node is removed once it has been unneeded for the
  idle timeout, so the powered nodes at time t are the most needed over ``[t - timeout, t]``
  (never more than the pool has). Powered GPUs that run no job draw idle power; removed nodes
  draw nothing. The horizon then ends ``idle_timeout_seconds`` after the last completion, when
  every pool has scaled down.

GPU board power only (what NVML reports), as the estimates: host CPUs, fans and networking are
not counted.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from energaizer.placement.fleet import FleetMode


def busy_steps(start: np.ndarray, end: np.ndarray, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Busy GPUs of one pool as a step function: breakpoints ``t`` (sorted, unique) and the level
    on ``[t[k], t[k+1])`` (``levels[-1]`` is 0 after the last completion)."""
    if not start.size:
        return np.zeros(0), np.zeros(0)
    times = np.concatenate([start, end])
    delta = np.concatenate([demand, -demand])
    order = np.argsort(times, kind="stable")
    times, delta = times[order], delta[order]
    uniq, first = np.unique(times, return_index=True)
    sums = np.add.reduceat(delta, first)
    levels = np.cumsum(sums)
    levels[np.abs(levels) < 1e-9] = 0.0
    return uniq, levels


def elastic_powered_gpu_seconds(
    times: np.ndarray,
    levels: np.ndarray,
    gpus_per_node: int,
    nodes: int,
    idle_timeout_seconds: float,
    horizon_end: float,
) -> float:
    """GPU-seconds of powered nodes up to ``horizon_end`` for the busy step function
    (``times``, ``levels``) under the elastic rule (module docstring)."""
    if not times.size:
        return 0.0
    needed = np.minimum(np.ceil(levels / gpus_per_node - 1e-9), nodes)
    seg_end = np.append(times[1:], math.inf)
    # node level needed[k] stays powered on [times[k], seg_end[k] + timeout)
    off = seg_end + idle_timeout_seconds
    points = np.unique(np.concatenate([times, off[np.isfinite(off)]]))
    points = points[points < horizon_end]
    heap: list[tuple[float, float]] = []  # (-level, switch-off time)
    k = 0
    total = 0.0
    for i, t in enumerate(points):
        while k < times.size and times[k] <= t:
            if needed[k] > 0:
                heapq.heappush(heap, (-float(needed[k]), float(off[k])))
            k += 1
        while heap and heap[0][1] <= t:
            heapq.heappop(heap)
        nxt = points[i + 1] if i + 1 < points.size else horizon_end
        if heap:
            total += -heap[0][0] * (nxt - t)
    return total * gpus_per_node


def pool_idle_gpu_seconds(
    start: np.ndarray,
    end: np.ndarray,
    demand: np.ndarray,
    *,
    gpus_per_node: int,
    nodes: int,
    mode: FleetMode,
    horizon_start: float,
    horizon_end: float,
    idle_timeout_seconds: float,
) -> float:
    """Idle-but-powered GPU-seconds of one pool over ``[horizon_start, horizon_end]`` for the jobs
    that ran on it (``start``, ``end``, ``demand``; all inside the horizon)."""
    busy = float(((end - start) * demand).sum())
    if mode is FleetMode.STATIC:
        return max(nodes * gpus_per_node * (horizon_end - horizon_start) - busy, 0.0)
    times, levels = busy_steps(start, end, demand)
    powered = elastic_powered_gpu_seconds(
        times, levels, gpus_per_node, nodes, idle_timeout_seconds, horizon_end
    )
    return max(powered - busy, 0.0)
