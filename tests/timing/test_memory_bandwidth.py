"""Memory-bound kernels: achievable DRAM bandwidth vs SM clock."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import kernel_timing


def _stream_table(nbytes: float = 4e9):
    b = KernelTableBuilder()
    b.add(np.array([0]), Op.ELEMENTWISE, Phase.PREFILL, 1.0, bytes=nbytes, precision_bytes=2.0)
    return b.build()


@pytest.mark.parametrize("gpu", ["a100-pcie-40gb", "h100-sxm", "a10"])
def test_streaming_keeps_full_bandwidth_down_to_the_knee_then_slows_with_the_clock(gpu, device):
    prof = CalibrationProfile(
        dram_efficiency=0.72, dram_stream_headroom=1.35, wave_overhead_cycles=0.0, kernel_latency_us=0.0
    )
    hw, dev = device(gpu, "bf16")
    f_max = hw.max_clock_mhz[0]
    knee = f_max * 0.72 / 1.35

    def seconds(mhz: float) -> float:
        return float(kernel_timing(_stream_table(), dev, np.array([mhz]), hw, prof).t_exec[0])

    assert seconds(f_max) == pytest.approx(4e9 / (hw.dram_bytes_per_s[0] * 0.72), rel=1e-9)
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
