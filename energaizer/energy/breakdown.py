"""Power x time -> joules per row, split into the contract's breakdown keys."""

from __future__ import annotations

import numpy as np

from energaizer.kernels.ops import OP_NAMES, Kind
from energaizer.kernels.table import KernelTable
from energaizer.power.model import KernelPower
from energaizer.result import BREAKDOWN_KEYS


def per_row(kt: KernelTable, values: np.ndarray, n: int) -> np.ndarray:
    """Sum a per-kernel column over each row's kernels."""
    return np.bincount(kt.row, weights=values, minlength=n)


def energy_breakdown(
    kt: KernelTable,
    t_exec: np.ndarray,
    power: KernelPower,
    gap_w: np.ndarray,
    gap_s: np.ndarray,
    gpus: np.ndarray,
    n: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Energy per row (all GPUs, J) and its breakdown.

    ``t_exec`` is the seconds each kernel entry runs in total (launch time x count), ``power`` its board
    power per GPU; ``gap_s`` / ``gap_w`` are the host-wait seconds and board power per row. Static
    power goes to ``static``, dynamic power to ``compute`` / ``memory``, all power of collectives to
    ``communication`` and the host waits to ``overhead``. Ranks that wait for the busiest one (expert
    parallelism, ``busy_share`` < 1) draw idle power meanwhile: dynamic power only for the busy share.
    """
    is_comm = kt.kind == Kind.COMM
    t_busy = t_exec * kt.busy_share
    breakdown = {
        "static": per_row(kt, power.idle * t_exec, n) * gpus,
        "compute": per_row(kt, np.where(is_comm, 0.0, power.compute * t_busy), n) * gpus,
        "memory": per_row(kt, np.where(is_comm, 0.0, power.memory * t_busy), n) * gpus,
        "communication": per_row(kt, np.where(is_comm, (power.compute + power.memory) * t_exec, 0.0), n)
        * gpus,
        "overhead": gap_w * gap_s * gpus,
    }
    energy = sum(breakdown[k] for k in BREAKDOWN_KEYS)
    return energy, breakdown


def op_breakdown(
    kt: KernelTable, t_exec: np.ndarray, power: KernelPower, gpus: np.ndarray, n: int
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Kernel energy (all GPUs, J) and GPU time (s) per operation: ``(names, energy, seconds)`` with
    one column per op that runs in any row (``energy[i, j]`` is op ``names[j]`` of row ``i``). Host
    waits belong to no op: the ops' seconds sum to ``duration_seconds`` minus the overhead time, their
    energy to ``energy_joules`` minus ``breakdown["overhead"]``."""
    n_ops = len(OP_NAMES)
    key = kt.row * n_ops + kt.op
    size = n * n_ops
    # (an empty table gives integer bincounts: hence the casts)
    seconds = (
        np.bincount(key, weights=t_exec, minlength=size).reshape(n, n_ops).astype(np.float64, copy=False)
    )
    joules = (power.idle + (power.compute + power.memory) * kt.busy_share) * t_exec
    energy = np.bincount(key, weights=joules, minlength=size).reshape(n, n_ops) * gpus[:, None]
    energy = energy.astype(np.float64, copy=False)
    used = np.flatnonzero(np.bincount(kt.op, minlength=n_ops))
    return tuple(OP_NAMES[j] for j in used.tolist()), energy[:, used], seconds[:, used]
