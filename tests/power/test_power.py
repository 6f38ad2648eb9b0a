"""Board power: one dynamic-power scale per die, power during host gaps."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu
from energaizer.profile import CalibrationProfile


def test_host_gaps_draw_more_than_parked_idle_power(one):
    w = Workload(model="gpt2", inference={"requests": 1, "input_tokens": 32, "output_tokens": 0})
    quiet = one(w, "a100-pcie-40gb", CalibrationProfile(gap_activity=0.0))
    busy = one(w, "a100-pcie-40gb", CalibrationProfile(gap_activity=0.5))
    assert busy.duration_seconds == pytest.approx(quiet.duration_seconds)
    assert busy.breakdown["overhead"] > quiet.breakdown["overhead"] > 0


def test_boards_sharing_a_die_draw_the_same_dynamic_power():
    """A100 SXM4 and PCIe are the same GA100 die at the same max clock: the same memory-bound work
    draws the same dynamic power on both (they differ in idle power and power cap only)."""
    w = Workload(
        model="llama-7b",
        precision="fp16",
        execution="eager",
        inference={"requests": 1, "input_tokens": 150, "output_tokens": 270, "batch_size": 1},
    )
    sxm, pcie = estimate(w, ["a100-sxm4-40gb", "a100-pcie-40gb"])
    assert sxm.duration_seconds == pytest.approx(pcie.duration_seconds, rel=0.01)
    dyn_sxm = sxm.breakdown["compute"] + sxm.breakdown["memory"]
    dyn_pcie = pcie.breakdown["compute"] + pcie.breakdown["memory"]
    assert dyn_sxm == pytest.approx(dyn_pcie, rel=0.02)
    assert get_gpu("a100-sxm4-40gb").tdp_w > get_gpu("a100-pcie-40gb").tdp_w


def test_a_die_that_a_lower_tdp_sibling_runs_faster_takes_that_siblings_dynamic_range():
    """The V100 SXM2's 300 W leaves headroom its GV100 die does not draw: the V100S PCIe runs the same
    die (80 SMs) at a higher boost clock (1597 MHz, 16.4 TFLOP/s FP32) in 250 W, so the SXM2's dynamic
    range is 250 W minus its idle, not TDP minus idle; SIMT work draws accordingly less than at 300 - idle."""
    from energaizer.hardware import GpuTable
    from energaizer.power.model import dynamic_range

    v100 = get_gpu("v100-sxm2-32gb")
    hw = GpuTable.from_specs([v100])
    assert dynamic_range(hw, np.array([0]))[0] == pytest.approx(250.0 - v100.idle_power_w)
    assert dynamic_range(hw, np.array([0]))[0] < v100.tdp_w - v100.idle_power_w

    # BERT-base fp32 training at batch 32 x 384 (SQuAD) in the Zeus trace: 625.5 ms per step at the 250 W
    # limit (drawing 228 W), 1293.2 ms at 100 W; with TDP - idle as the range the capped step took 2.21x
    def step_s(limit_w: float) -> float:
        w = Workload(
            model="bert-base",
            task="training",
            precision="fp32",
            power_limit_w=limit_w,
            training={"steps": 10, "global_batch_size": 32, "sequence_length": 384},
        )
        return estimate(w, ["v100-sxm2-32gb"])[0].duration_seconds

    assert step_s(100) / step_s(250) == pytest.approx(1293.2 / 625.5, rel=0.04)


def test_idle_power_per_clock_follows_the_boards_measured_tables():
    """Idle power rises with the locked clock as the measured boards do: the A100-SXM4-40GB takes its
    sister 80 GB board's measured curve (same die, clocks and SXM4 module), and a GPU without a table
    rises by the mean of the measured boards' ratio, which must stay within what they show."""
    from energaizer.hardware import GpuTable
    from energaizer.power.dvfs import idle_power

    prof = CalibrationProfile()
    specs = [get_gpu(g) for g in ("a100-sxm4-40gb", "a100-sxm4-80gb", "v100-sxm2-32gb")]
    hw = GpuTable.from_specs(specs)
    g = np.arange(3)
    at_max = idle_power(hw.max_clock_mhz[g], g, hw, prof)
    assert at_max[0] == pytest.approx(at_max[1]) == pytest.approx(82.29)
    assert at_max[2] == pytest.approx(specs[2].idle_power_w * prof.idle_at_max_clock_ratio)
    ratios = []
    for spec in (get_gpu(x) for x in ("a100-pcie-40gb", "a100-sxm4-80gb", "h100-sxm")):
        table = sorted(spec.idle_power_table, key=lambda p: p.mhz)
        ratios.append(table[-1].value / table[0].value)
    assert min(ratios) <= prof.idle_at_max_clock_ratio <= max(ratios)
    assert prof.idle_at_max_clock_ratio == pytest.approx(sum(ratios) / len(ratios), abs=0.02)
