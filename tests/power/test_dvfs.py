"""Voltage vs clock: measured tables, and the curve a GPU without one takes from its idle table."""

from __future__ import annotations

import numpy as np
import pytest
from gemm_support import one_gemm, one_gpu

from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.power.dvfs import (
    IDLE_VOLTAGE_EXPONENT,
    ClockCurves,
    idle_power,
    idle_voltage_exponent,
    voltage_ratio,
)
from energaizer.power.model import solve_operating_point
from energaizer.profile import CalibrationProfile, load_profile


def _table(*specs) -> GpuTable:
    return GpuTable.from_specs(list(specs))


@pytest.mark.parametrize("gpu", ["a100-pcie-40gb", "a100-sxm4-80gb"])
def test_voltage_from_the_idle_table_matches_the_boards_that_measured_both(gpu):
    """The two boards with a measured voltage and idle table: the voltage their idle table implies is
    within 0.04 of the measured one (relative to the max clock) at every clock."""
    spec = get_gpu(gpu)
    hw = _table(spec, spec.model_copy(update={"voltage_table": []}))
    clocks = np.array([p.mhz for p in spec.voltage_table], dtype=float)
    measured = voltage_ratio(clocks, np.zeros(clocks.size, dtype=int), hw, CalibrationProfile())
    derived = voltage_ratio(clocks, np.ones(clocks.size, dtype=int), hw, CalibrationProfile())
    assert measured[-1] == derived[-1] == pytest.approx(1.0)
    assert np.max(np.abs(derived - measured)) < 0.04


def test_h100_voltage_leaves_its_floor_where_its_idle_power_rises():
    """The H100's idle table is flat up to ~1125 MHz and climbs from 75 to 120 W above it; its voltage,
    taken from that table, rises from there, not from the generic knee (0.75 x 1980 = 1485 MHz)."""
    hw = _table(get_gpu("h100-sxm"))
    prof = CalibrationProfile()
    clocks = np.array([600.0, 1125.0, 1360.0, 1565.0, 1800.0, 1980.0])
    v = ClockCurves(np.zeros(clocks.size, dtype=int), hw, prof).voltage_ratio(clocks)
    assert v[-1] == pytest.approx(1.0)
    assert np.all(np.diff(v) > 0)
    fine = np.arange(345.0, 1981.0, 5.0)  # the table dips by ~0.5 W here and there: the voltage does not
    assert np.all(np.diff(ClockCurves(np.zeros(fine.size, dtype=int), hw, prof).voltage_ratio(fine)) >= 0)
    assert v[0] == pytest.approx(v[1], abs=0.03)  # the floor
    generic = prof.voltage_min_ratio + (1 - prof.voltage_min_ratio) * np.clip(
        (clocks - prof.voltage_knee_ratio * 1980) / ((1 - prof.voltage_knee_ratio) * 1980), 0, 1
    )
    assert v[3] > generic[3] + 0.05  # 1565 MHz: well above the generic ramp's start


def test_h200_takes_the_h100_die_curve():
    """The H200 is the H100's GH100 die at the same clocks: its idle table is the H100's plus its larger
    HBM3e's 7 W, so its voltage follows the H100's and its idle at the max clock is near the 124-125 W the
    board read just after load."""
    h100, h200 = get_gpu("h100-sxm"), get_gpu("h200")
    hw = _table(h100, h200)
    clocks = np.linspace(400.0, 1980.0, 40)
    prof = CalibrationProfile()
    v100, v200 = (voltage_ratio(clocks, np.full(clocks.size, i), hw, prof) for i in (0, 1))
    assert np.max(np.abs(v200 - v100)) < 0.03
    at_max = idle_power(np.array([1980.0]), np.array([1]), hw, prof)[0]
    assert at_max == pytest.approx(124.5, abs=4.0)
    assert h200.idle_power_table[0].value == pytest.approx(h100.idle_power_table[0].value + 7.0)


def test_b200_idle_is_what_idle_b200s_read():
    """Idle HGX B200s with nothing loaded read 136-144 W (nvidia-smi on two nodes, drivers 575 and 580: the
    catalog's SMI-B200), the state of the H100's 72 W; held at the max clock in P0 by a loaded server they
    read 192-196 W (NVIDIA/TensorRT-LLM issue 10278). No B200 publishes a locked-clock idle table, so the
    shipped profile's idle-at-max-clock ratio spans the two."""
    hw = _table(get_gpu("b200"))
    prof = load_profile(None)
    parked, at_max = idle_power(
        np.array([hw.min_clock_mhz[0], hw.max_clock_mhz[0]]), np.zeros(2, dtype=int), hw, prof
    )
    assert 136.0 <= parked <= 144.0
    assert at_max == pytest.approx(194.0, rel=0.10)


@pytest.mark.parametrize(
    "gpu, measured_mhz, rel",
    [
        # benchmarks/results/h100-nvml-2026-11-22/run1/kernels.csv (1352-1407 by size)
        ("h100-sxm", 1360.0, 0.05),
        # ../shared/data/measured/nvml_kernels_hopper.csv (1422-1505 by size)
        ("h200", 1477.0, 0.10),
    ],
)
def test_a_large_bf16_gemm_at_the_700_w_cap_runs_near_the_measured_clock(gpu, measured_mhz, rel):
    """8192^3 bf16 back to back at the 700 W cap: the clock the power model settles at is near the measured
    mean SM clock (with the generic voltage ramp it settled at ~1570 MHz on both, with the A100 boards'
    idle-to-voltage exponent at ~1480; the H200 runs ~10 % less work per clock than the H100 in those runs
    and holds a higher clock for it, which one die in the model cannot)."""
    hw, dev = one_gpu(gpu, "bf16")
    op = solve_operating_point(
        one_gemm(8192, 8192, 8192, 2.0),
        dev,
        hw.max_clock_mhz[:1].copy(),
        hw.power_limit_default_w[:1].copy(),
        hw,
        load_profile(None),
    )
    assert op.power.total[0] == pytest.approx(700.0, rel=0.01)
    assert op.clock_mhz[0] == pytest.approx(measured_mhz, rel=rel)


def test_hopper_voltage_comes_from_its_idle_table_with_its_own_exponent():
    """No Hopper board reports its voltage: the H100's is its idle table to the power 1/2.5 (the exponent
    its capped GEMMs pin: V at 0.86-0.89 of its maximum at their 1340-1410 MHz), where an A100 board without a
    voltage table keeps the 1.4 the measured A100 boards give."""
    assert idle_voltage_exponent("hopper") == 2.5
    assert idle_voltage_exponent("ampere") == IDLE_VOLTAGE_EXPONENT == 1.4
    hw = _table(get_gpu("h100-sxm"), get_gpu("a100-sxm4-40gb"))
    prof = CalibrationProfile()
    h100 = voltage_ratio(np.array([1352.0, 1407.0]), np.zeros(2, dtype=int), hw, prof)
    assert 0.86 <= h100[0] < h100[1] <= 0.89
    idle = idle_power(np.array([1352.0, 1980.0]), np.zeros(2, dtype=int), hw, prof)
    assert h100[0] == pytest.approx((idle[0] / idle[1]) ** (1 / 2.5), rel=1e-3)
    a100 = np.array([1200.0, 1410.0])
    v = voltage_ratio(a100, np.ones(2, dtype=int), hw, prof)
    idle = idle_power(a100, np.ones(2, dtype=int), hw, prof)
    assert v[0] == pytest.approx((idle[0] / idle[1]) ** (1 / 1.4), rel=1e-3)
