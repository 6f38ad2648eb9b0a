"""Module utilisation -> board power, and the power-cap clock solve.

P_exec = P_idle(f) + D * s(f) * (a_tc u_tc + a_l2 u_l2 + a_sm u_busy) + E_fp * (V/V_max)^2 * FP32 FLOP/s
         + E_bit * DRAM bits/s
where D = TDP - idle (the GPU's dynamic range), s(f) = (V(f)/V_max)^2 f/f_max (the core clock
domain), and DRAM power does not follow the SM clock. CUDA-core math costs energy per FLOP rather than
a share of D: GPUs differ four-fold in FP32 lanes per watt of TDP (an A10 has 128 per SM at 150 W, a
V100 64 at 300 W), and their measured SIMT power follows the FLOPs they execute, not their TDP. When P_exec exceeds the power limit the
clock drops (as the firmware does) until it fits: compute-bound kernels then take longer. The firmware
holds the limit on average over its control window, so the kernels that interleave within one window
share a clock (:func:`solve_power_window`); :func:`solve_operating_point` caps each kernel on its own
(an isolated kernel repeated back to back).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from energaizer.hardware import GpuTable
from energaizer.kernels.table import KernelTable
from energaizer.power.dvfs import ClockCurves, core_scale, idle_power
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice, KernelTiming, kernel_timing, plan_timing

CAP_BISECTION_STEPS = 9  # ~3 MHz on a 1.6 GHz range, finer than the 15 MHz clock steps


@dataclass
class KernelPower:
    idle: np.ndarray  # W at the operating clock
    compute: np.ndarray  # dynamic W of tensor/FP/L2/SM activity
    memory: np.ndarray  # dynamic W of DRAM traffic

    @property
    def total(self) -> np.ndarray:
        return self.idle + self.compute + self.memory

    def scaled(self, factor: np.ndarray) -> KernelPower:
        """Every part times ``factor`` (per kernel): a board held to its limit draws less of each."""
        return KernelPower(
            idle=self.idle * factor, compute=self.compute * factor, memory=self.memory * factor
        )


def dynamic_range(hw: GpuTable, g: np.ndarray) -> np.ndarray:
    """D: the dynamic power the alpha terms are fractions of (W); TDP - idle unless the catalog
    gives the die's own figure (boards sharing a die and clock draw the same for the same work)."""
    return np.maximum(hw.dynamic_power_w[g], 1.0)


def gap_power(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """Board power while the GPU waits for the host at clock ``clock_mhz``: not parked, clocks up, small
    kernels (sampling, copies) keep a fitted share of the SM-activity power."""
    return idle_power(clock_mhz, g, hw, prof) + prof.gap_activity * prof.alpha_sm * dynamic_range(
        hw, g
    ) * core_scale(clock_mhz, g, hw, prof)


@dataclass
class PowerPlan:
    """The clock-independent factors of :func:`kernel_power` for the kernels of ``dev``."""

    curves: ClockCurves
    dynamic_w: np.ndarray  # D per kernel
    alpha_tensor: np.ndarray
    dram_j_per_byte: np.ndarray  # energy per bit x 8 (J per byte moved)
    dram_bytes_per_s: np.ndarray


def plan_power(dev: KernelDevice, hw: GpuTable, prof: CalibrationProfile) -> PowerPlan:
    g = dev.g
    pj = prof.dram_pj_per_bit * hw.dram_energy_ratio[g]
    return PowerPlan(
        curves=ClockCurves(g, hw, prof),
        dynamic_w=dynamic_range(hw, g),
        # asynchronous MMAs (Hopper/Blackwell: operands from shared memory, no register round trip)
        alpha_tensor=prof.alpha_tensor * np.where(hw.tma[g], prof.async_mma_energy_ratio, 1.0),
        dram_j_per_byte=pj * 1e-12 * 8.0,
        dram_bytes_per_s=hw.dram_bytes_per_s[g],
    )


def kernel_power(
    tm: KernelTiming,
    dev: KernelDevice,
    clock_mhz: np.ndarray,
    hw: GpuTable,
    prof: CalibrationProfile,
    plan: PowerPlan | None = None,
) -> KernelPower:
    """Board power of one GPU while each kernel runs at ``clock_mhz``, split as the breakdown needs it:
    idle power at that clock, the dynamic power of the core clock domain (tensor cores, L2 and SM
    activity as shares of the die's dynamic range, scaled by V^2 f; CUDA-core FLOPs at an energy per
    FLOP scaled by V^2) and DRAM power (energy per bit x the bits the kernel moves per second).
    ``plan``: :func:`plan_power` of ``dev`` (computed here when None)."""
    pl = plan_power(dev, hw, prof) if plan is None else plan
    voltage = pl.curves.voltage_ratio(clock_mhz)
    s = pl.curves.core_scale(clock_mhz, voltage)
    compute = (
        pl.dynamic_w
        * s
        * (pl.alpha_tensor * tm.u_tensor + prof.alpha_l2 * tm.u_l2 + prof.alpha_sm * tm.u_busy)
    )
    compute = compute + prof.fp32_pj_per_flop * 1e-12 * tm.fp_flop_rate * voltage**2
    memory = pl.dram_j_per_byte * tm.u_dram * pl.dram_bytes_per_s
    return KernelPower(idle=pl.curves.idle_power(clock_mhz), compute=compute, memory=memory)


@dataclass
class OperatingPoint:
    clock_mhz: np.ndarray  # effective clock per kernel (MHz)
    timing: KernelTiming
    power: KernelPower
    capped: np.ndarray  # bool
    # per kernel, the index of its class of identical kernels (shape, device, request and limit bit for
    # bit: same operating point); None when not worked out
    kernel_class: np.ndarray | None = None


# The kernel columns the operating point depends on: all but the bookkeeping (timing and power are per
# kernel, from these alone; a new shape column is included by default)
_SOLVE_COLUMNS = tuple(
    name
    for name in KernelTable.__dataclass_fields__
    if name not in ("row", "op", "phase", "count", "busy_share")
)


def solve_operating_point(
    kt: KernelTable,
    dev: KernelDevice,
    requested_mhz: np.ndarray,
    power_limit_w: np.ndarray,
    hw: GpuTable,
    prof: CalibrationProfile,
) -> OperatingPoint:
    """The clock, time and power of every kernel. Each runs at ``requested_mhz`` unless its board power
    there exceeds ``power_limit_w`` (per GPU); then, as the firmware does, the clock drops: bisected to
    the highest that fits (never below the GPU's minimum clock), where the board draws at most the limit.

    Rows of a batch share many kernels (the decode GEMMs of a model at one batch size on one GPU): each
    distinct kernel (same shape, device, clock and limit, bit for bit) is solved once."""
    math_bytes = dev.math_bytes if dev.math_bytes is not None else np.zeros(dev.g.shape)
    cols = [getattr(kt, name) for name in _SOLVE_COLUMNS]
    first, inverse = distinct_rows(
        [*cols, dev.g, dev.peak, dev.tensor, math_bytes, requested_mhz, power_limit_w]
    )
    if first.size == inverse.size:
        return replace(_solve(kt, dev, requested_mhz, power_limit_w, hw, prof), kernel_class=inverse)
    op = _solve(_subset(kt, first), dev.subset(first), requested_mhz[first], power_limit_w[first], hw, prof)
    return OperatingPoint(
        clock_mhz=op.clock_mhz[inverse],
        timing=_gather(op.timing, inverse),
        power=_gather(op.power, inverse),
        capped=op.capped[inverse],
        kernel_class=inverse,
    )


def distinct_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)`` over the rows formed by ``columns`` (equal length, numeric or bool): the
    position of one row of each distinct bit pattern, and for every row the index into ``first`` of
    its own. Rows are sorted by a hash of their bits and only equal neighbours merged (exact: a hash
    collision can only leave a duplicate unmerged)."""
    n = columns[0].shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bits = [np.ascontiguousarray(col, dtype=np.float64).view(np.uint64) for col in columns]
    h = np.zeros(n, dtype=np.uint64)
    mult, shift = np.uint64(0x9E3779B97F4A7C15), np.uint64(29)
    for col in bits:
        h ^= col
        h *= mult
        h ^= h >> shift
    order = np.argsort(h)  # any order of equal hashes will do: a group's rows are equal bit for bit
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    new = starts[1:]
    new[:] = False
    for col in bits:
        ordered = col[order]
        new |= ordered[1:] != ordered[:-1]
    group = np.cumsum(starts) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group
    return order[starts], inverse


def _gather(part, idx: np.ndarray):
    """The per-kernel dataclass ``part`` at entries ``idx``."""
    return type(part)(**{name: getattr(part, name)[idx] for name in part.__dataclass_fields__})


def _solve(
    kt: KernelTable,
    dev: KernelDevice,
    requested_mhz: np.ndarray,
    power_limit_w: np.ndarray,
    hw: GpuTable,
    prof: CalibrationProfile,
) -> OperatingPoint:
    tm = kernel_timing(kt, dev, requested_mhz, hw, prof)
    pw = kernel_power(tm, dev, requested_mhz, hw, prof)
    capped = pw.total > power_limit_w
    clock_mhz = requested_mhz.copy()
    if capped.any():
        idx = np.nonzero(capped)[0]
        sub = _subset(kt, idx)
        sdev = dev.subset(idx)
        lo = hw.min_clock_mhz[sdev.g].copy()
        hi = requested_mhz[idx].copy()
        lim = power_limit_w[idx]
        # what does not depend on the clock, once for all steps
        plan, pplan = plan_timing(sub, sdev, hw, prof), plan_power(sdev, hw, prof)
        for _ in range(CAP_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            p = kernel_power(kernel_timing(sub, sdev, mid, hw, prof, plan), sdev, mid, hw, prof, pplan).total
            ok = p <= lim
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
        clock_mhz[idx] = lo
        # Only the capped kernels change (timing and power are per kernel): recompute those at their clock.
        sub_tm = kernel_timing(sub, sdev, lo, hw, prof, plan)
        sub_pw = kernel_power(sub_tm, sdev, lo, hw, prof, pplan)
        # At the minimum clock a kernel may still exceed the limit: the board then draws the limit.
        scale = np.minimum(1.0, lim / np.maximum(sub_pw.total, 1e-9))
        tm = _scatter(tm, idx, sub_tm)
        pw = _scatter(
            pw,
            idx,
            sub_pw.scaled(scale),
        )
    return OperatingPoint(clock_mhz=clock_mhz, timing=tm, power=pw, capped=capped)


def _scatter(full, idx: np.ndarray, part):
    """A copy of the per-kernel dataclass ``full`` with entries ``idx`` replaced by those of ``part``."""
    cols = {}
    for name in full.__dataclass_fields__:
        col = getattr(full, name).copy()
        col[idx] = getattr(part, name)
        cols[name] = col
    return type(full)(**cols)


def _subset(kt: KernelTable, idx: np.ndarray) -> KernelTable:
    return KernelTable(**{name: getattr(kt, name)[idx] for name in kt.__dataclass_fields__})


def solve_uncapped(
    kt: KernelTable, dev: KernelDevice, requested_mhz: np.ndarray, hw: GpuTable, prof: CalibrationProfile
) -> OperatingPoint:
    """Every kernel at ``requested_mhz`` whatever its power (the start of :func:`solve_power_window`)."""
    return solve_operating_point(kt, dev, requested_mhz, np.full(requested_mhz.shape, np.inf), hw, prof)


def solve_power_window(
    kt: KernelTable,
    dev: KernelDevice,
    requested_mhz: np.ndarray,
    power_limit_w: np.ndarray,
    window: np.ndarray,
    hw: GpuTable,
    prof: CalibrationProfile,
    wait_seconds: np.ndarray | None = None,
    wait_watts: np.ndarray | None = None,
    uncapped: OperatingPoint | None = None,
    wait_gpu: np.ndarray | None = None,
) -> OperatingPoint:
    """The clock, time and power of every kernel when the power limit holds on average over a window.

    The firmware's power controller averages the board's power over tens of milliseconds and moves the
    clock in steps that take milliseconds: it cannot follow kernels of microseconds to milliseconds.
    The kernels of one ``window`` (a non-negative integer per kernel: the kernels that interleave
    within the controller's window, e.g. a serving engine's decode steps) therefore share one clock,
    the highest at or below ``requested_mhz`` at which their time-weighted average power fits
    ``power_limit_w``; a compute-bound GEMM may draw more than the limit at that clock, paid for by the
    memory-bound kernels around it. ``wait_seconds`` / ``wait_watts`` (per window) are the host waits
    inside the window and the board's power meanwhile: they count towards the average. Kernels of a
    window share the request and the limit. A window still above the limit at the GPU's minimum clock
    draws the limit (its power scaled down, as in :func:`solve_operating_point`). ``uncapped``: the
    operating point at ``requested_mhz`` without a limit (:func:`solve_uncapped`), if the caller has it.
    ``wait_gpu`` (the GPU index of each window): the waits draw :func:`gap_power` at the clock the window
    is tried at, as the whole window runs at one clock (``wait_watts``, at the requested clock, then only
    for the uncapped check)."""
    n_win = int(window.max()) + 1 if window.size else 0
    wait_s = np.zeros(n_win) if wait_seconds is None else wait_seconds
    wait_j = np.zeros(n_win) if wait_watts is None else wait_watts * wait_s
    op = solve_uncapped(kt, dev, requested_mhz, hw, prof) if uncapped is None else uncapped
    avg = _window_mean(window, kt.count * op.timing.t_exec, op.power.total, n_win, wait_s, wait_j)
    limit = np.full(n_win, np.inf)
    limit[window] = power_limit_w
    over = avg > limit
    capped = over[window]
    if not capped.any():
        return OperatingPoint(op.clock_mhz, op.timing, op.power, capped)
    idx = np.nonzero(capped)[0]
    sub, sdev, sw = _subset(kt, idx), dev.subset(idx), window[idx]
    lo = np.zeros(n_win)
    hi = np.zeros(n_win)
    lo[sw] = hw.min_clock_mhz[sdev.g]
    hi[sw] = requested_mhz[idx]
    kernel_class = np.arange(kt.count.size) if op.kernel_class is None else op.kernel_class
    classes = _ClassSolver(sub, sdev, kernel_class[idx], hw, prof)
    # The kernels of one class in different windows share their bracket's ends; with the same path of
    # the bisection so far they share its clock too: each (class, path) pair is evaluated once. ``first``:
    # a kernel of each pair, ``pair``: each kernel's pair.
    first, pair = classes.first, classes.cls

    def at(
        clock_w: np.ndarray, first: np.ndarray, pair: np.ndarray
    ) -> tuple[KernelTiming, KernelPower, np.ndarray]:
        tm, pw = classes.evaluate(first, clock_w[sw])
        joules = wait_j if wait_gpu is None else gap_power(clock_w, wait_gpu, hw, prof) * wait_s
        return tm, pw, _window_mean(sw, sub.count * tm.t_exec[pair], pw.total[pair], n_win, wait_s, joules)

    for _ in range(CAP_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        ok = at(mid, first, pair)[2] <= limit
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
        first, pair = _compact(pair * 2 + ok[sw], 2 * first.size)
    pair_tm, pair_pw, sub_avg = at(lo, first, pair)
    sub_tm, sub_pw = _gather(pair_tm, pair), _gather(pair_pw, pair)
    scale = np.ones(n_win)
    scale[over] = np.minimum(1.0, limit[over] / np.maximum(sub_avg[over], 1e-9))
    s = scale[sw]
    clock_mhz = op.clock_mhz.copy()
    clock_mhz[idx] = lo[sw]
    pw = sub_pw.scaled(s)
    return OperatingPoint(
        clock_mhz=clock_mhz,
        timing=_scatter(op.timing, idx, sub_tm),
        power=_scatter(op.power, idx, pw),
        capped=capped,
    )


def _compact(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)`` of the integer ``keys`` (each in [0, size)): the position of the first of each
    distinct key, in the order of the keys, and for every element the index of its own into ``first``.
    No sort: one pass over the elements and one over the key range."""
    present = np.zeros(size, dtype=bool)
    present[keys] = True
    ids = np.cumsum(present) - 1
    inverse = ids[keys]
    first = np.empty(int(ids[-1]) + 1, dtype=np.int64)
    first[inverse[::-1]] = np.arange(keys.size - 1, -1, -1)
    return first, inverse


class _ClassSolver:
    """Timing and power of kernels that fall into classes of identical kernels (``cls``, one per kernel of
    ``kt``), each kernel at its own clock: the kernels of a class that share a clock are one evaluation.
    Most classes are at one clock at a time: one kernel of each class is evaluated on a table and plan
    made once; the few (class, clock) pairs beyond a class's first are evaluated on their own."""

    def __init__(
        self, kt: KernelTable, dev: KernelDevice, cls: np.ndarray, hw: GpuTable, prof: CalibrationProfile
    ) -> None:
        self.first, self.cls = _compact(cls, int(cls.max()) + 1)  # a kernel of each class; each one's class
        self.kt, self.dev, self.hw, self.prof = kt, dev, hw, prof
        self.rep_kt, self.rep_dev = _subset(kt, self.first), dev.subset(self.first)
        self.plan = plan_timing(self.rep_kt, self.rep_dev, hw, prof)
        self.pplan = plan_power(self.rep_dev, hw, prof)

    def evaluate(self, first: np.ndarray, clock_mhz: np.ndarray) -> tuple[KernelTiming, KernelPower]:
        """Timing and power of the kernels ``first`` (one of each pair: kernels of one class at the same
        ``clock_mhz``, one clock per kernel), in their order."""
        hw, prof = self.hw, self.prof
        pair_cls, pair_clock = self.cls[first], clock_mhz[first]
        n_pair = first.size
        # the first pair of each class is evaluated with its class, the others on their own
        lead = np.empty(self.rep_kt.count.size, dtype=np.int64)
        lead[pair_cls[::-1]] = np.arange(n_pair - 1, -1, -1)
        tm = kernel_timing(self.rep_kt, self.rep_dev, pair_clock[lead], hw, prof, self.plan)
        pw = kernel_power(tm, self.rep_dev, pair_clock[lead], hw, prof, self.pplan)
        if n_pair == lead.size and np.array_equal(pair_cls, np.arange(n_pair)):
            return tm, pw  # the pairs are the classes
        tm, pw = _gather(tm, pair_cls), _gather(pw, pair_cls)
        extra = np.nonzero(lead[pair_cls] != np.arange(n_pair))[0]
        kx = first[extra]
        sub, sdev = _subset(self.kt, kx), self.dev.subset(kx)
        x_tm = kernel_timing(sub, sdev, pair_clock[extra], hw, prof)
        x_pw = kernel_power(x_tm, sdev, pair_clock[extra], hw, prof)
        return _scatter(tm, extra, x_tm), _scatter(pw, extra, x_pw)


def _window_mean(
    window: np.ndarray,
    seconds: np.ndarray,
    watts: np.ndarray,
    n_win: int,
    wait_seconds: np.ndarray,
    wait_joules: np.ndarray,
) -> np.ndarray:
    """Average board power per window: kernel ``seconds`` at ``watts`` plus the waits (0 when empty)."""
    total = np.bincount(window, weights=seconds, minlength=n_win) + wait_seconds
    joules = np.bincount(window, weights=seconds * watts, minlength=n_win) + wait_joules
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, joules / total, 0.0)
