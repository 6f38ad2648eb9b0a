"""Tensor-core GEMM tiles take their math time plus the time to stage their operands at a rate per SM
that does not grow with the tensor cores' width (calibration: operand_feed_bytes_per_cycle)."""

from __future__ import annotations

import numpy as np
import pytest
from gemm_support import gemm_at_max_clock

from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.profile import CalibrationProfile

N = 8192.0


def _gemm(gpu: str, precision: str, prof: CalibrationProfile) -> tuple[float, float]:
    """(seconds, share of the datasheet peak at f_max) of an 8192^3 GEMM."""
    return gemm_at_max_clock(N, N, N, gpu, precision, prof)


def test_wider_tensor_cores_reach_a_smaller_share_of_their_peak():
    """Same math efficiency, same staging rate: A10 (1024 FLOP/clk/SM) > A100 (2048) in the share of
    peak a large bf16 GEMM reaches, as their register-fed MMAs wait for the staged operands. Hopper
    (4096, 128 x 256 tile) overlaps its bulk-copy staging with the math: the slower of the two."""
    prof = CalibrationProfile(
        compute_efficiency=0.8,
        operand_feed_bytes_per_cycle=48.0,
        wave_overhead_cycles=0.0,
        kernel_latency_us=0.0,
    )
    a10 = _gemm("a10", "bf16", prof)[1]
    a100 = _gemm("a100-sxm4-80gb", "bf16", prof)[1]
    h100 = _gemm("h100-sxm", "bf16", prof)[1]
    # 1 / (1/(R e) + 1/(I B)) / R with R FLOP/clk/SM, I the tile's FLOP per staged byte, B = 48
    assert a10 == pytest.approx(1 / (1 / 819.2 + 1 / (64 * 48)) / 1024, rel=0.03)
    assert a100 == pytest.approx(1 / (1 / 1638.4 + 1 / (64 * 48)) / 2048, rel=0.03)
    assert a10 > a100
    # 128 x 256 tile: 2 x 128 x 256 / ((128 + 256) x 2) = 85.3 FLOP per staged byte
    assert h100 == pytest.approx(min(0.8, 85.33 * 48 / 4096), rel=0.05)  # less the last partial wave
    assert h100 > a100
    # a faster staging rate narrows the gap and never slows a GEMM down
    quick = prof.model_copy(update={"operand_feed_bytes_per_cycle": 96.0})
    assert _gemm("a100-sxm4-80gb", "bf16", quick)[1] > a100


def test_blackwell_pairs_share_the_b_tile():
    """B200 runs one MMA over a pair of SMs that share the B operand: each SM stages 128 + 256/2 rows
    per k-step of its 128 x 256 tile instead of 128 + 256."""
    prof = CalibrationProfile(
        compute_efficiency=0.8,
        operand_feed_bytes_per_cycle=48.0,
        wave_overhead_cycles=0.0,
        kernel_latency_us=0.0,
    )
    g = get_gpu("b200")
    assert GpuTable.from_specs([g]).b_tile_sharing[0] == 2.0
    assert GpuTable.from_specs([get_gpu("h100-sxm")]).b_tile_sharing[0] == 1.0
    t, _ = _gemm("b200", "bf16", prof)
    f = g.max_clock_mhz * 1e6
    rate_per_sm = g.peak_tflops["bf16"] * 1e12 * g.max_clock_mhz / g.tensor_clock_mhz / g.sm_count * 0.8
    waves = np.ceil((N / 128) * (N / 256) / g.sm_count)
    expected = waves * max(2 * 128 * 256 * N / rate_per_sm, (128 + 128) * N * 2 / (48 * f))
    assert t == pytest.approx(expected, rel=1e-6)


def test_simt_gemms_do_not_use_the_tensor_staging_rate():
    """CUDA-core (fp32 without TF32) GEMMs overlap their loads with the FFMAs: the tensor-core staging
    rate does not change them."""
    slow = CalibrationProfile(operand_feed_bytes_per_cycle=8.0)
    fast = CalibrationProfile(operand_feed_bytes_per_cycle=512.0)
    assert _gemm("v100-sxm2-32gb", "fp32", slow)[0] == _gemm("v100-sxm2-32gb", "fp32", fast)[0]
    assert _gemm("v100-sxm2-32gb", "fp16", slow)[0] > 1.5 * _gemm("v100-sxm2-32gb", "fp16", fast)[0]


def test_eager_decode_attention_does_not_jump_with_the_parity_of_its_mean_context(one):
    """A decode step's eager attention GEMMs (Q K^T, P V) are tabled at the mean context, input + output / 2,
    whose alignment is no stride of any step: the steps run every context length. On Hopper their
    operand staging averages the lengths' bulk-copy shares, so one more output token moves the time by its
    share of the work (before: an odd or half-token mean context cut the feed to 1/8 or 1/16, and one
    token more changed this H100 row's time by 1.5x and a B200 row's by 3.5x)."""
    from itertools import pairwise

    from energaizer import Workload

    def seconds(output_tokens: int) -> float:
        inference = {"requests": 64, "input_tokens": 512, "output_tokens": output_tokens, "batch_size": 32}
        w = Workload(model="llama-2-7b", attention="eager", execution="eager", inference=inference)
        return one(w, "h100-sxm").duration_seconds

    times = [seconds(n) for n in range(1024, 1029)]
    for a, b in pairwise(times):
        assert a <= b <= a * 1.01
