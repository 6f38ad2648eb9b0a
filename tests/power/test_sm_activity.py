"""SM activity while a GEMM waits on memory: on GPUs whose GEMMs stage their tiles with bulk copies (Hopper
and Blackwell, TMA), a streaming GEMM's warps sleep at their barriers and draw a share of the busy SMs'
activity power (the profile's ``async_stall_activity``); kernels whose every thread issues its own loads
(elementwise passes, attention) stay fully active, and GPUs without bulk copies are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from gemm_support import one_gemm, one_gpu, one_kernel

from energaizer.kernels.ops import Op, Phase
from energaizer.power.model import kernel_power
from energaizer.profile import CalibrationProfile, load_profile
from energaizer.timing.kernel_time import kernel_timing

# Our NVML sweep on an H100 SXM (benchmarks/results/h100-nvml-2026-11-22/run1/kernels.csv): a bf16 GEMM of
# 16 x 4096 x 57344, its weights streamed at 0.89 of the DRAM peak, 157.9 us at 1980 MHz and 563 W.
STREAMING_GEMM_H100_W = 563.1


def _watts(kt, gpu: str, prof: CalibrationProfile, precision: str = "bf16") -> float:
    hw, dev = one_gpu(gpu, precision)
    clock = np.array([hw.max_clock_mhz[0]])
    tm = kernel_timing(kt, dev, clock, hw, prof)
    return float(kernel_power(tm, dev, clock, hw, prof).total[0])


def test_a_streaming_gemm_on_the_h100_draws_what_it_was_measured_at():
    prof = load_profile(None)
    kt = one_gemm(16, 57344, 4096, 2.0)
    assert _watts(kt, "h100-sxm", prof) == pytest.approx(STREAMING_GEMM_H100_W, rel=0.05)
    # fully active SMs overstate it by more than 10 %
    busy = prof.model_copy(update={"async_stall_activity": 1.0})
    assert _watts(kt, "h100-sxm", busy) > 1.1 * STREAMING_GEMM_H100_W


@pytest.mark.parametrize("eager", [True, False])
def test_the_share_applies_to_gemms_on_bulk_copy_gpus_only(eager):
    prof = load_profile(None)
    busy = prof.model_copy(update={"async_stall_activity": 1.0})
    gemv = one_gemm(16, 57344, 4096, 2.0)
    # elementwise passes and decode attention on the H100, and a streaming GEMM on an A100, draw the same
    # either way
    add = one_kernel(Op.ELEMENTWISE, Phase.PREFILL, bytes=3 * 2.0**30, precision_bytes=2.0, eager=eager)
    attention = one_kernel(
        Op.ATTENTION,
        Phase.DECODE,
        m=4.0,
        n=4096.0,
        k=128.0,
        gemm_group=512.0,
        flops=4 * 4 * 4096 * 128 * 512.0,
        bytes=512 * 4096 * 128 * 2 * 2.0,
        precision_bytes=2.0,
        eager=eager,
    )
    for kt in (add, attention):
        assert _watts(kt, "h100-sxm", prof) == pytest.approx(_watts(kt, "h100-sxm", busy))
    assert _watts(gemv, "a100-sxm4-80gb", prof) == pytest.approx(_watts(gemv, "a100-sxm4-80gb", busy))
    # a compute-bound GEMM keeps its SMs active: the share hardly moves it
    big = one_gemm(8192, 8192, 8192, 2.0)
    assert _watts(big, "h100-sxm", prof) == pytest.approx(_watts(big, "h100-sxm", busy), rel=0.02)
    assert _watts(gemv, "b200", prof) < _watts(gemv, "b200", busy)
