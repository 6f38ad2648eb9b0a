"""Clock-dependent figures: supply voltage and idle power vs SM clock.

Measured tables (EnergAIzer artifact) are used where the catalog has them; elsewhere a generic
curve: voltage flat at ``voltage_min_ratio`` up to the knee (``voltage_knee_ratio`` x f_max), then
linear to 1 at f_max; idle power flat up to the knee, then rising to ``idle_at_max_clock_ratio`` x
the parked idle at f_max (the shape of the A100 and H100 tables).
"""

from __future__ import annotations

import numpy as np

from energaizer.hardware import GpuTable
from energaizer.profile import CalibrationProfile


def _ramp(clock_mhz: np.ndarray, max_clock_mhz: np.ndarray, knee_ratio: float) -> np.ndarray:
    knee = knee_ratio * max_clock_mhz
    return np.clip((clock_mhz - knee) / np.maximum(max_clock_mhz - knee, 1.0), 0.0, 1.0)


def _measured(
    out: np.ndarray, clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, table_field: str, relative: bool
) -> np.ndarray:
    """Replace ``out`` by the GPU's measured table (value vs locked clock), interpolated at ``clock_mhz``, on
    the GPUs that have one; ``relative`` divides by the value at the highest clock."""
    for gi in np.flatnonzero(np.bincount(g)):  # the GPUs present (np.unique sorts: slower)
        table = getattr(hw.specs[gi], table_field)
        if len(table) >= 2:
            sel = g == gi
            mhz = np.array([p.mhz for p in table])
            value = np.array([p.value for p in table])
            order = np.argsort(mhz)
            out[sel] = np.interp(clock_mhz[sel], mhz[order], value[order]) / (
                value[order][-1] if relative else 1.0
            )
    return out


def voltage_ratio(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """V(clock) / V(max clock) at SM clocks ``clock_mhz`` on GPUs ``g`` (indices into ``hw``)."""
    out = prof.voltage_min_ratio + (1.0 - prof.voltage_min_ratio) * _ramp(
        clock_mhz, hw.max_clock_mhz[g], prof.voltage_knee_ratio
    )
    return _measured(out, clock_mhz, g, hw, "voltage_table", relative=True)


def idle_power(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """Board power of an idle GPU whose SM clock is held at ``clock_mhz`` (W)."""
    base = hw.idle_power_w[g]
    out = base * (
        1.0
        + (prof.idle_at_max_clock_ratio - 1.0)
        * _ramp(clock_mhz, hw.max_clock_mhz[g], prof.voltage_knee_ratio)
    )
    return _measured(out, clock_mhz, g, hw, "idle_power_table", relative=False)


def core_scale(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """Dynamic-power scale of the core clock domain relative to the max clock: (V/V_max)^2 * clock / max clock."""
    return voltage_ratio(clock_mhz, g, hw, prof) ** 2 * (clock_mhz / hw.max_clock_mhz[g])
