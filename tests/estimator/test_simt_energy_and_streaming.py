"""CUDA-core math costs energy per FLOP (not a share of TDP), and streaming bandwidth falls with the SM
clock below a knee (bytes in flight are bounded, their latency runs in core cycles)."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.power.dvfs import voltage_ratio
from energaizer.power.model import kernel_power
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice, kernel_timing


def _device(gpu: str, precision: str) -> tuple[GpuTable, KernelDevice]:
    hw = GpuTable.from_specs([get_gpu(gpu)])
    peak, tensor = hw.peak(0, precision)
    return hw, KernelDevice(g=np.zeros(1, dtype=int), peak=np.array([peak]), tensor=np.array([tensor]))


def _sgemm_table(n: float = 8192.0):
    b = KernelTableBuilder()
    b.add(
        np.array([0]),
        Op.LINEAR,
        Phase.PREFILL,
        1.0,
        m=n,
        n=n,
        k=n,
        flops=2 * n**3,
        bytes=12 * n * n,
        precision_bytes=4.0,
    )
    return b.build()


def _stream_table(nbytes: float = 4e9):
    b = KernelTableBuilder()
    b.add(np.array([0]), Op.ELEMENTWISE, Phase.PREFILL, 1.0, bytes=nbytes, precision_bytes=2.0)
    return b.build()


# Only the FP32 term: every other module's power switched off.
SIMT_ONLY = {"alpha_tensor": 0.0, "alpha_l2": 0.0, "alpha_sm": 0.0, "dram_pj_per_bit_hbm": 0.0}


@pytest.mark.parametrize(
    ("gpu", "mhz"), [("a100-pcie-40gb", 1410.0), ("a100-pcie-40gb", 900.0), ("v100-sxm2-32gb", 1530.0)]
)
def test_simt_power_is_energy_per_flop_hand_checked(gpu, mhz):
    """An sgemm's CUDA-core power = pJ/FLOP x executed FLOP/s x (V/V_max)^2, nothing else."""
    prof = CalibrationProfile(fp32_pj_per_flop=9.0, **SIMT_ONLY)
    hw, dev = _device(gpu, "fp32")
    f = np.array([mhz])
    tm = kernel_timing(_sgemm_table(), dev, f, hw, prof)
    pw = kernel_power(tm, dev, f, hw, prof)
    flop_rate = 2 * 8192.0**3 / tm.t_exec[0]
    v = voltage_ratio(f, np.zeros(1, dtype=int), hw, prof)[0]
    assert pw.compute[0] == pytest.approx(9e-12 * flop_rate * v**2, rel=1e-9)
    assert pw.compute[0] > 0


def test_simt_power_does_not_follow_tdp():
    """Two boards with the same die and clocks but different TDP draw the same SIMT power for the same
    sgemm (a TDP-scaled term would give the 400 W board 60 % more)."""
    prof = CalibrationProfile(fp32_pj_per_flop=9.0, **SIMT_ONLY)
    draws = []
    for gpu in ("a100-pcie-40gb", "a100-sxm4-40gb"):
        hw, dev = _device(gpu, "fp32")
        f = np.array([1410.0])  # f_max of both: the voltage ratio is 1 on either table
        draws.append(
            kernel_power(kernel_timing(_sgemm_table(), dev, f, hw, prof), dev, f, hw, prof).compute[0]
        )
    assert draws[0] == pytest.approx(draws[1], rel=1e-9)


def test_shipped_profile_gives_ga102_simt_gemms_the_power_of_its_bf16_gemms():
    """Measured on the A10 at 900 MHz (EnergAIzer artifact): ViT-L fp32 draws 127-141 W, bf16 104-121 W;
    128 FP32 lanes per SM running flat out cost at least what the tensor cores do. A TDP-scaled SIMT
    term put fp32 at 0.65 x bf16 (73 W)."""
    w = {
        "model": "google/vit-large-patch16-224",
        "inference": {"requests": 32, "batch_size": 32, "input_tokens": 1, "output_tokens": 0},
        "frequency_mhz": 900,
    }
    fp32 = estimate(Workload.model_validate({**w, "precision": "fp32"}), "a10")[0]
    bf16 = estimate(Workload.model_validate({**w, "precision": "bf16"}), "a10")[0]
    assert fp32.average_power_watts > 0.9 * bf16.average_power_watts


@pytest.mark.parametrize("gpu", ["a100-pcie-40gb", "h100-sxm", "a10"])
def test_streaming_keeps_full_bandwidth_down_to_the_knee_then_slows_with_the_clock(gpu):
    prof = CalibrationProfile(dram_efficiency=0.72, dram_stream_headroom=1.35, wave_overhead_cycles=0.0)
    hw, dev = _device(gpu, "bf16")
    f_max = hw.max_clock_mhz[0]
    knee = f_max * 0.72 / 1.35

    def seconds(mhz: float) -> float:
        return float(kernel_timing(_stream_table(), dev, np.array([mhz]), hw, prof).t_exec[0])

    assert seconds(f_max) == pytest.approx(4e9 / (hw.bw[0] * 0.72), rel=1e-9)
    assert seconds(1.05 * knee) == pytest.approx(seconds(f_max), rel=1e-9)
    # below the knee: bandwidth proportional to the clock
    assert seconds(0.5 * knee) == pytest.approx(2 * seconds(knee), rel=1e-9)
    assert seconds(0.25 * knee) == pytest.approx(4 * seconds(knee), rel=1e-9)


def test_memory_bound_decode_slows_at_low_locked_clocks_but_not_near_max():
    """Decode at batch 1 is memory-bound: locking the clock 10 % below max costs (almost) no time,
    locking it at a third of max does."""
    base = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "precision": "bf16",
        "inference": {"requests": 1, "batch_size": 1, "input_tokens": 128, "output_tokens": 256},
        "execution": "graphs",
    }
    t = {
        f: estimate(Workload.model_validate({**base, "frequency_mhz": f}), "h100-sxm")[0].duration_seconds
        for f in (1980, 1780, 660)
    }
    assert t[1780] == pytest.approx(t[1980], rel=0.03)
    assert t[660] > 1.3 * t[1980]
