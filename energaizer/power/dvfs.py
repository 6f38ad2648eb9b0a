"""Clock-dependent figures: supply voltage and idle power vs SM clock.

Measured tables (EnergAIzer artifact) are used where the catalog has them. A GPU with a measured idle
table and no voltage table (the H100 SXM, and the boards that share a die's idle curve) takes its voltage
from the idle table: V(f) / V(f_max) = (idle(f) / idle(f_max)) ** (1 / k). An idle GPU's power is the
leakage and clock tree of its core, which rise with the supply voltage, so its idle table shows where the
voltage leaves its floor and how far it climbs. k is set from the two boards where both are measured (A100
PCIe and A100 SXM4 80 GB: least squares through the origin of log idle on log voltage 1.49 and 1.31; at
``IDLE_VOLTAGE_EXPONENT`` = 1.4 the derived voltage is within 0.04 of the measured one on every clock of
both). No Hopper board reports its voltage; its k is the one its bf16 GEMMs at the 700 W cap pin (H100 and
H200, ``../shared/data/measured/nvml_kernels_hopper.csv`` and our H100 sweep: with the profile's tensor and
DRAM scales the capped clocks need the voltage at 0.85-0.90 of its maximum at 1340-1500 MHz; k = 2.5
minimises the GEMMs' time error at the cap, 5.8 -> 3.2 %, where 1.4 put their clocks ~100 MHz high and
their time 4-10 % short), so the H100's idle rise from 72 to 120 W spans voltages of 0.81-1 of the maximum,
not 0.69-1. Elsewhere a generic curve: voltage flat at ``voltage_min_ratio`` up to the knee
(``voltage_knee_ratio`` x f_max), then linear to 1 at f_max; idle power flat up to the knee, then rising to
``idle_at_max_clock_ratio`` x the parked idle at f_max (the voltage the A100 tables' shape, the idle rise
the mean of the A100 and H100 tables).
"""

from __future__ import annotations

import numpy as np

from energaizer.hardware import GpuTable
from energaizer.profile import CalibrationProfile

IDLE_VOLTAGE_EXPONENT = 1.4  # idle(f) / idle(f_max) = (V(f) / V(f_max)) ** 1.4 on the measured A100 boards
# by architecture where its own measurements set it (module docstring)
IDLE_VOLTAGE_EXPONENT_BY_ARCHITECTURE: dict[str, float] = {"hopper": 2.5}


def idle_voltage_exponent(architecture: str) -> float:
    """The exponent relating a GPU's idle power to its supply voltage (idle ~ V ** exponent)."""
    return IDLE_VOLTAGE_EXPONENT_BY_ARCHITECTURE.get(architecture, IDLE_VOLTAGE_EXPONENT)


class ClockCurves:
    """Voltage and idle power vs clock for the GPUs ``g`` (indices into ``hw``, one per element): what
    does not depend on the clock (the knee, the measured tables of the GPUs present and which elements
    use them) is prepared once, for callers that evaluate the curves at many clocks (the power-cap
    bisection)."""

    def __init__(self, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> None:
        self.prof = prof
        self.max_clock_mhz = hw.max_clock_mhz[g]
        self.knee = prof.voltage_knee_ratio * self.max_clock_mhz
        self.span = np.maximum(self.max_clock_mhz - self.knee, 1.0)
        self.idle_w = hw.idle_power_w[g]
        self.voltage_tables = _tables(g, hw, "voltage_table", relative=True)
        self.idle_tables = _tables(g, hw, "idle_power_table", relative=False)

    def _ramp(self, clock_mhz: np.ndarray) -> np.ndarray:
        return np.clip((clock_mhz - self.knee) / self.span, 0.0, 1.0)

    def voltage_ratio(self, clock_mhz: np.ndarray) -> np.ndarray:
        """V(clock) / V(max clock)."""
        vmin = self.prof.voltage_min_ratio
        out = vmin + (1.0 - vmin) * self._ramp(clock_mhz)
        return _measured(out, clock_mhz, self.voltage_tables)

    def idle_power(self, clock_mhz: np.ndarray) -> np.ndarray:
        """Board power of an idle GPU whose SM clock is held at ``clock_mhz`` (W)."""
        out = self.idle_w * (1.0 + (self.prof.idle_at_max_clock_ratio - 1.0) * self._ramp(clock_mhz))
        return _measured(out, clock_mhz, self.idle_tables)

    def core_scale(self, clock_mhz: np.ndarray, voltage: np.ndarray | None = None) -> np.ndarray:
        """Dynamic-power scale of the core clock domain relative to the max clock: (V/V_max)^2 * clock /
        max clock (``voltage``: :meth:`voltage_ratio` at this clock, when the caller has it)."""
        v = self.voltage_ratio(clock_mhz) if voltage is None else voltage
        return v**2 * (clock_mhz / self.max_clock_mhz)


_Table = tuple[np.ndarray, np.ndarray, np.ndarray, float]  # elements, clocks (sorted), values, divisor


def _tables(g: np.ndarray, hw: GpuTable, table_field: str, relative: bool) -> list[_Table]:
    """The measured tables (value vs locked clock) of the GPUs of ``g`` that have one, with the elements
    they apply to; ``relative`` divides by the value at the highest clock. A voltage table a GPU lacks is
    derived from its idle table where it has one (module docstring)."""
    out = []
    for gi in np.flatnonzero(np.bincount(g)):  # the GPUs present (np.unique sorts: slower)
        spec = hw.specs[gi]
        table = getattr(spec, table_field)
        derived = table_field == "voltage_table" and len(table) < 2
        if derived:
            table = spec.idle_power_table
        if len(table) >= 2:
            mhz = np.array([p.mhz for p in table])
            order = np.argsort(mhz)
            value = np.array([p.value for p in table])[order]
            if derived:  # the supply never drops as the clock rises: the idle table's dips are noise
                value = np.maximum.accumulate(value ** (1.0 / idle_voltage_exponent(spec.architecture)))
            out.append((np.flatnonzero(g == gi), mhz[order], value, value[-1] if relative else 1.0))
    return out


def _measured(out: np.ndarray, clock_mhz: np.ndarray, tables: list[_Table]) -> np.ndarray:
    """Replace ``out`` by the measured tables, interpolated at ``clock_mhz``, on the elements they apply to."""
    for idx, mhz, value, divisor in tables:
        out[idx] = np.interp(clock_mhz[idx], mhz, value) / divisor
    return out


def voltage_ratio(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """V(clock) / V(max clock) at SM clocks ``clock_mhz`` on GPUs ``g`` (indices into ``hw``)."""
    return ClockCurves(g, hw, prof).voltage_ratio(clock_mhz)


def idle_power(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """Board power of an idle GPU whose SM clock is held at ``clock_mhz`` (W)."""
    return ClockCurves(g, hw, prof).idle_power(clock_mhz)


def core_scale(clock_mhz: np.ndarray, g: np.ndarray, hw: GpuTable, prof: CalibrationProfile) -> np.ndarray:
    """Dynamic-power scale of the core clock domain relative to the max clock: (V/V_max)^2 * clock / max clock."""
    return ClockCurves(g, hw, prof).core_scale(clock_mhz)
