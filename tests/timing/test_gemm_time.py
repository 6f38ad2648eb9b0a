"""GEMM time: tiles and waves, tile-shape choice, SIMT issue limits, unaligned operands, low-precision experts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from gemm_support import gemm_at_max_clock, one_gemm, one_gpu

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu, get_model
from energaizer.hardware import GROUPED_FP8_BLOCK_ROWS, GpuTable
from energaizer.profile import CalibrationProfile, load_profile
from energaizer.timing.kernel_time import GEMM_TILE_SHAPES, KernelDevice, kernel_timing


def _simt_gemm(gpu: str, prof: CalibrationProfile):
    """One large fp32 (CUDA-core) GEMM at the clock its peak is quoted at: (seconds, FP32 activity)."""
    n = 8192.0
    hw, dev = one_gpu(gpu, "fp32")
    assert not dev.tensor[0]
    table = one_gemm(n, n, n, 4.0, nbytes=12 * n * n)
    tm = kernel_timing(table, dev, np.array([hw.tensor_clock_mhz[0]]), hw, prof)  # peak is quoted there
    return float(tm.t_exec[0]), float(tm.u_fp[0]), float(dev.peak[0])


def _gemm_time(m: float, n: float, k: float, gpu: str, precision: str) -> float:
    return gemm_at_max_clock(m, n, k, gpu, precision)[0]


def _moe(precision: str, model: str = "Qwen/Qwen3-235B-A22B-Instruct-2507") -> Workload:
    return Workload(
        model=model,
        precision=precision,
        gpu_count=8,
        inference={"requests": 256, "input_tokens": 256, "output_tokens": 256, "batch_size": 32},
    )


def test_hand_checked_gemm_time():
    """8192^3 bf16 on A100-SXM4-80GB at 1410 MHz with ideal math efficiency and no overheads:
    4096 tiles of 128x128 over 108 SMs = 38 waves; each wave is 2*128*128*8192 FLOP per SM at 312 TF/108
    plus staging (128 + 128) x 8192 bf16 operands at 48 B per SM per clock."""
    prof = CalibrationProfile(
        compute_efficiency=1.0,
        wave_overhead_cycles=0.0,
        kernel_latency_us=0.0,
        dram_efficiency=1.0,
        operand_feed_bytes_per_cycle=48.0,
    )
    gpu = get_gpu("a100-sxm4-80gb")
    hw = GpuTable.from_specs([gpu])
    n = 8192.0
    kt = one_gemm(n, n, n, 2.0)
    dev = KernelDevice(g=np.array([0]), peak=np.array([312e12]), tensor=np.array([True]))
    t = kernel_timing(kt, dev, np.array([1410.0]), hw, prof).t_exec[0]
    math = 2 * 128 * 128 * n / (312e12 / 108)  # 92.9 us
    staging = (128 + 128) * n * 2 / (48 * 1410e6)  # 62.0 us
    expected = 38 * (math + staging)
    assert t == pytest.approx(expected, rel=1e-9)
    assert 38 * math == pytest.approx(3.531e-3, rel=1e-3)  # vs 3.524 ms ideal: 1.6 % wave quantisation
    assert expected == pytest.approx(5.886e-3, rel=1e-3)


def test_fp8_faster_than_bf16_on_hopper_for_compute_bound_prefill(one):
    w = Workload(
        model="llama-3.1-70b",
        gpu_count=4,
        attention="flash",  # fused attention: GEMM-bound (eager scores would be memory-bound)
        inference={"requests": 64, "input_tokens": 4096, "output_tokens": 0, "batch_size": 16},
    )
    bf16 = one(w, "h100-sxm")
    fp8 = one(w.model_copy(update={"precision": "fp8"}), "h100-sxm")
    assert fp8.duration_seconds < 0.8 * bf16.duration_seconds
    # A100 has no fp8: the same request runs with 16-bit math there; only the half-width weights it
    # stages save time (a 128 x 128 tile stages 3/4 of the bf16 bytes), far short of Hopper's gain.
    a_bf16 = one(w, "a100-sxm4-80gb")
    a_fp8 = one(w.model_copy(update={"precision": "fp8"}), "a100-sxm4-80gb")
    assert a_fp8.duration_seconds == pytest.approx(a_bf16.duration_seconds, rel=0.2)
    assert (
        a_fp8.duration_seconds / a_bf16.duration_seconds > fp8.duration_seconds / bf16.duration_seconds + 0.1
    )


@pytest.mark.parametrize(
    ("gpu", "issue_bound"),
    [("a100-pcie-40gb", False), ("v100-sxm2-32gb", False), ("a10", True), ("h100-sxm", True), ("l40s", True)],
)
def test_simt_gemm_on_128_lane_sms_is_issue_bound(gpu, issue_bound):
    """SMs with 128 FP32 lanes (GA10x, Ada, Hopper) reach only the FFMA share of the issue slots in a
    SIMT GEMM (H100 sgemm measured at 0.78 of its datasheet peak); 64-lane SMs keep full rate. The
    SM stays fully busy either way, so the FP32 activity (and power) does not drop with the rate."""
    prof = CalibrationProfile(
        simt_efficiency=0.95, simt_issue_share=0.7, wave_overhead_cycles=0.0, kernel_latency_us=0.0
    )
    t, u_fp, peak = _simt_gemm(gpu, prof)
    rate = 2 * 8192.0**3 / t / peak
    assert rate == pytest.approx(0.95 * (0.7 if issue_bound else 1.0), rel=0.03)
    assert u_fp == pytest.approx(0.95, rel=0.03)


def test_smaller_tiles_fill_the_machine():
    """1024 x 768 output on 80 SMs: 48 tiles of 128 x 128 leave 32 SMs idle; a library picks a
    smaller tile so that twice the rows cost about twice the time, not three times."""
    t512 = _gemm_time(512, 768, 768, "v100-sxm2-32gb", "fp32")
    t1024 = _gemm_time(1024, 768, 768, "v100-sxm2-32gb", "fp32")
    assert t1024 / t512 < 2.3
    assert len(GEMM_TILE_SHAPES) >= 2


def test_large_gemm_keeps_the_big_tile_rate():
    """A large bf16 GEMM on H100 takes the widest tile (128 x 256), whose operand staging per FLOP is the
    smallest: 2048 tiles over 132 SMs = 16 waves, each bound by the slower of its math and its operand
    staging (Hopper's bulk copies overlap them); a 128 x 128 tile would stage a third more bytes per
    FLOP and is not chosen."""
    m = n = k = 8192.0
    t = _gemm_time(m, n, k, "h100-sxm", "bf16")
    g = get_gpu("h100-sxm")
    prof = CalibrationProfile()
    f = g.max_clock_mhz * 1e6
    rate_per_sm = g.peak_tflops["bf16"] * 1e12 * g.max_clock_mhz / g.tensor_clock_mhz / g.sm_count
    math = 2 * 128 * 256 * k / (rate_per_sm * prof.compute_efficiency)
    staging = (128 + 256) * k * 2 / (prof.operand_feed_bytes_per_cycle * f)
    widest = 16 * max(math, staging)
    assert widest < t < 1.02 * widest  # + the per-wave overhead
    square = (
        2
        * 16
        * max(
            2 * 128 * 128 * k / (rate_per_sm * prof.compute_efficiency),
            256 * k * 2 / (prof.operand_feed_bytes_per_cycle * f),
        )
    )
    assert t < square


@pytest.mark.parametrize(
    ("element_bytes", "grouped", "scaled"),
    [(1.0, True, True), (2.0, True, False), (1.0, False, False)],  # fp8 experts; bf16 experts; dense fp8
)
def test_block_scaled_expert_gemms_rescale_on_the_cuda_cores(element_bytes, grouped, scaled):
    """An fp8 grouped expert GEMM rescales its fp32 partial sums after every 128-wide K block: 3 FLOPs
    per accumulator per block on the CUDA cores (8192^3: 3 m n k / 128), 2 issue slots each, after that
    block's MMAs (serial with the tile); bf16 experts and dense fp8 GEMMs have none. (The kernels' remaining
    low-precision efficiency is held at 1 to isolate that work.)"""
    m = n = k = 8192.0
    hw, dev = one_gpu("h100-sxm", "fp8")
    prof = CalibrationProfile(quantized_expert_efficiency=1.0)
    f = np.array([1500.0])
    tm = kernel_timing(one_gemm(m, n, k, element_bytes, moe_grouped=grouped), dev, f, hw, prof)
    plain = kernel_timing(one_gemm(m, n, k, element_bytes), dev, f, hw, prof)
    cuda_flops = tm.fp_flop_rate[0] * tm.t_exec[0]
    if not scaled:
        assert cuda_flops == 0.0 and tm.t_exec[0] == pytest.approx(plain.t_exec[0], rel=1e-12)
        return
    assert cuda_flops == pytest.approx(3.0 * m * n * k / 128.0, rel=1e-9)
    g = get_gpu("h100-sxm")
    scale_s = 2.0 * m * n * (k / 128.0) / (g.sm_count * 128.0 * 1500e6)  # 128 FP32 lanes per SM
    assert plain.t_exec[0] + 0.99 * scale_s < tm.t_exec[0] < plain.t_exec[0] + 1.2 * scale_s
    assert tm.u_fp[0] > 0.0


@pytest.mark.parametrize("m", [64.0, 8192.0])  # decode-like (memory-bound) and compute-bound
def test_channel_scaled_experts_run_as_cutlass_grouped_gemms(m):
    """fp8 experts with one scale per output channel (and per token: Llama 4 Maverick FP8) run as CUTLASS
    grouped GEMMs that apply both scales in the epilogue (vLLM's choice for that scheme on Hopper): no
    rescale on the CUDA cores and the bf16 kernels' rates, where 128 x 128 block-scaled experts (Qwen3,
    DeepSeek FP8: Triton / DeepGEMM) run at quantized_expert_efficiency beyond their rescale work."""
    n = k = 8192.0
    hw, dev = one_gpu("h100-sxm", "fp8")
    prof = CalibrationProfile()
    f = np.array([1500.0])
    channel = kernel_timing(one_gemm(m, n, k, 1.0, moe_grouped=True, channel_scaled=True), dev, f, hw, prof)
    dense = kernel_timing(one_gemm(m, n, k, 1.0), dev, f, hw, prof)
    block = kernel_timing(one_gemm(m, n, k, 1.0, moe_grouped=True), dev, f, hw, prof)
    assert channel.fp_flop_rate[0] == 0.0
    assert channel.t_exec[0] == pytest.approx(dense.t_exec[0], rel=1e-12)
    assert block.t_exec[0] > 1.5 * channel.t_exec[0]  # 1 / 0.57 at least, plus the rescale


@pytest.mark.parametrize(("gpu", "rescaled"), [("h100-sxm", True), ("b200", False)])
def test_blackwell_tensor_cores_apply_the_block_scales(gpu, rescaled):
    """Hopper's fp8 grouped expert kernels rescale their fp32 partial sums on the CUDA cores after every
    128-wide K block; Blackwell's block-scaled MMAs (tcgen05 kind::mxf8f6f4) apply the scales inside the
    tensor core, so none of that work (and power) remains."""
    hw, dev = one_gpu(gpu, "fp8")
    f = np.array([1500.0])
    tm = kernel_timing(
        one_gemm(4096.0, 4096.0, 4096.0, 1.0, moe_grouped=True), dev, f, hw, CalibrationProfile()
    )
    cuda_flops = tm.fp_flop_rate[0] * tm.t_exec[0]
    assert (cuda_flops > 0.0) == rescaled


# gpt-oss-120b (MXFP4 experts, W4A16 on Hopper) served by vLLM on H100s at 1,024 prompt and 1,024 output
# tokens: time per output token by (TP, concurrency), ms (SemiAnalysis InferenceX issue 828, an independent
# serving benchmark, not a calibration source).
GPT_OSS_120B_H100_TPOT_MS = {(2, 64): 15.21, (4, 64): 9.89, (8, 4): 3.72, (8, 16): 4.83}


@pytest.mark.parametrize(("tp", "concurrency"), sorted(GPT_OSS_120B_H100_TPOT_MS))
def test_weight_only_experts_stream_at_the_bf16_rate(tp, concurrency):
    """Weight-only expert kernels (MXFP4 weights, bf16 math on an H100) dequantise on the CUDA cores and
    stream their packed weights at the bf16 kernels' rate: the public serving benchmark's time per output
    token within 15 % (at the fp8 W8A8 kernels' 0.57 share the TP 2 rows took 1.5x as long)."""
    waves, out = 10, 1024
    w = Workload(
        model="gpt-oss-120b",
        precision="fp4",
        gpu_count=tp,
        inference={
            "requests": waves * concurrency,
            "batch_size": concurrency,
            "input_tokens": 1024,
            "output_tokens": out,
        },
    )
    (r,) = estimate(w, "h100-sxm")
    tpot_ms = r.duration_seconds / (waves * out) * 1e3
    assert tpot_ms == pytest.approx(GPT_OSS_120B_H100_TPOT_MS[(tp, concurrency)], rel=0.15)


@pytest.mark.parametrize(
    ("precision", "model", "slower"),
    [
        ("fp8", "Qwen/Qwen3-235B-A22B-Instruct-2507", True),  # fp8 grouped expert GEMMs
        ("bf16", "Qwen/Qwen3-235B-A22B-Instruct-2507", False),  # bf16 experts: unaffected
        ("fp8", "llama-3.1-70b", False),  # dense fp8: no grouped GEMM
    ],
)
def test_quantized_expert_efficiency_only_slows_low_precision_experts(one, precision, model, slower):
    fast = CalibrationProfile(quantized_expert_efficiency=1.0)
    slow = CalibrationProfile(quantized_expert_efficiency=0.5)
    w = _moe(precision, model)
    t_fast = one(w, "h100-sxm", fast).duration_seconds
    t_slow = one(w, "h100-sxm", slow).duration_seconds
    if slower:
        assert t_slow > 1.1 * t_fast
    else:
        assert t_slow == pytest.approx(t_fast, rel=1e-9)


# A public Triton fused-MoE kernel benchmark on an H200 (not fitted; the kernel the serving engines run), SGLang
# PR 11730 (github.com/sgl-project/sglang/pull/11730): Qwen3-235B-A22B-Instruct-2507 FP8 (128 x 128 block scales)
# at TP 8, default configuration, the whole fused-MoE call (routing sort, activation quantisation, both expert
# GEMMs, activation, sum) per layer, in us by tokens per call.
QWEN3_235B_FP8_TP8_H200_MOE_US = {8: 66.87, 32: 124.99}


@pytest.mark.parametrize("batch", sorted(QWEN3_235B_FP8_TP8_H200_MOE_US))
def test_fp8_expert_gemms_match_the_public_fused_moe_kernel(batch, monkeypatch):
    """Qwen3-235B-A22B FP8 decode at TP 8 on an H200: the two grouped expert GEMMs of a layer and step take
    within 15 % of SGLang's fused-MoE kernel time at the same tokens per step (the call's small routing,
    quantisation and activation kernels are left out of the comparison: a few us at batch 8-32). SGLang's
    Triton kernel computes the routed rows only, not vLLM 0.11's padded DeepGEMM buffer (the default on
    Hopper, energaizer.hardware.GROUPED_FP8_BLOCK_ROWS), which at TP 8 holds every expert's slice."""
    (padded,) = estimate(_fused_moe_decode(batch), "h200")
    monkeypatch.setitem(GROUPED_FP8_BLOCK_ROWS, "hopper", 0.0)
    (routed,) = estimate(_fused_moe_decode(batch), "h200")
    layers = get_model("Qwen/Qwen3-235B-A22B-Instruct-2507").layers
    per_layer_step_us = _expert_seconds(routed) / (layers * (FUSED_MOE_OUT_TOKENS + 1)) * 1e6
    assert per_layer_step_us == pytest.approx(QWEN3_235B_FP8_TP8_H200_MOE_US[batch], rel=0.15)
    # 128 experts x 127 padding rows: why vLLM turned DeepGEMM's MoE off at TP 8 (vllm-project/vllm PR 29346)
    assert _expert_seconds(padded) > 1.5 * _expert_seconds(routed)


FUSED_MOE_OUT_TOKENS = 64


def _expert_seconds(r) -> float:
    return sum(r.ops[name].duration_seconds for name in ("moe_up", "moe_down"))


def _fused_moe_decode(batch: int) -> Workload:
    out_tokens = FUSED_MOE_OUT_TOKENS
    return Workload(
        model="Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
        precision="fp8",
        gpu_count=8,
        tensor_parallel=8,
        inference={"requests": batch, "batch_size": batch, "input_tokens": 1, "output_tokens": out_tokens},
    )


# The same call on a B200, SGLang PR 11816 (github.com/sgl-project/sglang/pull/11816, the Triton kernels before
# its switch to FlashInfer's): DeepSeek-R1 FP8 at TP 8, tuned configuration, us per layer by tokens per call.
DEEPSEEK_R1_FP8_TP8_B200_MOE_US = {8: 95.47, 16: 138.68, 24: 175.80}


def test_fp8_expert_gemms_on_blackwell_against_the_public_fused_moe_kernel():
    """DeepSeek-R1 FP8 decode at TP 8 on a B200: at 8 tokens a layer's two expert GEMMs take within 15 % of the
    public kernel; from 16 tokens on the model is slower than it (the 0.57 share stands in for the call's fixed
    cost, which larger batches amortise: docs/accuracy.md), but by less than the share itself."""
    out_tokens = 64
    model = get_model("deepseek-ai/DeepSeek-R1")
    moe_layers = round(model.layers * model.moe_layer_fraction)
    per_layer = {}
    for batch in DEEPSEEK_R1_FP8_TP8_B200_MOE_US:
        w = Workload(
            model="deepseek-ai/DeepSeek-R1",
            precision="fp8",
            gpu_count=8,
            tensor_parallel=8,
            inference={
                "requests": batch,
                "batch_size": batch,
                "input_tokens": 1,
                "output_tokens": out_tokens,
            },
        )
        (r,) = estimate(w, "b200")
        moe_s = sum(r.ops[name].duration_seconds for name in ("moe_up", "moe_down"))
        per_layer[batch] = moe_s / (moe_layers * (out_tokens + 1)) * 1e6
    assert per_layer[8] == pytest.approx(DEEPSEEK_R1_FP8_TP8_B200_MOE_US[8], rel=0.15)
    for batch in (16, 24):
        ratio = per_layer[batch] / DEEPSEEK_R1_FP8_TP8_B200_MOE_US[batch]
        assert 1.0 < ratio < 1.0 / 0.57


def test_unaligned_gemm_is_slow_on_hopper_only():
    """GPT-2's LM head (N = 50257, odd) cannot use Hopper's 16-byte bulk copies: measured 95 TFLOP/s
    against ~650 for aligned shapes. The padded vocabulary (50304) keeps the fast path, and an A100
    (native kernels for every alignment) pays nothing."""
    h_odd = _gemm_time(8192, 50257, 768, "h100-sxm", "bf16")
    h_pad = _gemm_time(8192, 50304, 768, "h100-sxm", "bf16")
    assert h_odd > 2.0 * h_pad
    h_even = _gemm_time(8192, 30522, 1024, "h100-sxm", "bf16")  # BERT: 4-byte aligned rows
    assert (
        h_pad * 30522 / 50304 * 1024 / 768
        < h_even
        < _gemm_time(8192, 30522 * 2 - 1, 1024, "h100-sxm", "bf16")
    )
    a_odd = _gemm_time(8192, 50257, 768, "a100-sxm4-40gb", "bf16")
    a_pad = _gemm_time(8192, 50304, 768, "a100-sxm4-40gb", "bf16")
    assert a_odd == pytest.approx(a_pad, rel=0.02)


def test_unaligned_vocabulary_slows_gpt2_training_on_h100():
    """The same GPT-2 with its vocabulary padded to a multiple of 64 (as Karpathy's nanoGPT does)
    trains faster on an H100, and the same on an A100."""
    gpt2 = get_model("gpt2")
    padded = gpt2.model_copy(update={"id": "gpt2-padded", "vocab": 50304})
    sizes = {"steps": 60, "global_batch_size": 8, "sequence_length": 1024}
    for gpu, gain in (("h100-sxm", 1.1), ("a100-sxm4-40gb", 1.0)):
        (odd,) = estimate(Workload(model="gpt2", task="training", training=sizes), gpu)
        (even,) = estimate(Workload(architecture=padded, task="training", training=sizes), gpu)
        assert odd.duration_seconds >= gain * even.duration_seconds * 0.99


def test_weight_only_gemms_dequantise_every_weight_on_the_cuda_cores():
    """fp8 weights on an A100 (bf16 math): a weight-only kernel converts each weight of its B tile once
    per M tile (1 FLOP each: 64-row decode GEMM = n x k), pipelined with the loads and MMAs, so a
    memory-bound decode GEMM keeps its time and draws the CUDA-core power on top."""
    m, n, k = 16.0, 8192.0, 8192.0
    hw, dev = one_gpu("a100-sxm4-80gb", "bf16")
    prof = CalibrationProfile()
    f = np.array([1410.0])
    kt = one_gemm(m, n, k, 1.0)
    wo = KernelDevice(g=dev.g, peak=dev.peak, tensor=dev.tensor, math_bytes=np.array([2.0]))
    native = KernelDevice(g=dev.g, peak=dev.peak, tensor=dev.tensor, math_bytes=np.array([1.0]))
    t_wo, t_native = kernel_timing(kt, wo, f, hw, prof), kernel_timing(kt, native, f, hw, prof)
    assert t_wo.fp_flop_rate[0] * t_wo.t_exec[0] == pytest.approx(n * k, rel=1e-9)
    assert t_native.fp_flop_rate[0] == 0.0
    assert t_wo.t_exec[0] == pytest.approx(t_native.t_exec[0], rel=1e-12)


def test_fp4_without_fp4_math_runs_weight_only_at_16_bit():
    """MXFP4/NVFP4 weights on a Hopper GPU run W4A16 kernels (bf16 math), not fp8 math."""
    hw = GpuTable.from_specs([get_gpu("h100-sxm"), get_gpu("b200")])
    assert hw.math_bytes(0, "fp4") == 2.0 and hw.peak(0, "fp4") == hw.peak(0, "bf16")
    assert hw.math_bytes(1, "fp4") == 0.5
    (r,) = estimate(Workload(model="gpt-oss-20b", precision="fp4"), "h100-sxm")
    assert "fp4 weights dequantised to bf16 math" in r.reason


def test_decode_gemms_stream_their_weights_at_the_gemm_share():
    """A batch-8 GEMM against 4096 x 14336 bf16 weights is memory-bound: its time is the weights at
    ``gemm_dram_efficiency`` of the DRAM peak, whatever the share the other kernels stream at."""
    base = {"kernel_latency_us": 0.0, "wave_overhead_cycles": 0.0}
    weights = 4096 * 14336 * 2.0
    peak = get_gpu("h100-sxm").memory_bw_gbs * 1e9
    for other in (0.5, 0.9):
        prof = CalibrationProfile(**base, dram_efficiency=other, gemm_dram_efficiency=0.8)
        t, _ = gemm_at_max_clock(8, 14336, 4096, "h100-sxm", "bf16", prof)
        assert t == pytest.approx(weights / (0.8 * peak), rel=0.01)


def test_shipped_gemm_share_is_the_h100_skinny_gemms():
    """The H100 sweep's GEMMs of 1-128 rows against 4096 x 14336 bf16 weights stream them at 0.77-0.84 of
    the HBM3 peak; the shipped profile's GEMM share (not fitted) is in that range."""
    sweep = Path(__file__).resolve().parents[2] / "benchmarks/results/h100-nvml-2026-11-22/sweep/sweep.csv"
    peak = get_gpu("h100-sxm").memory_bw_gbs * 1e9
    with sweep.open(newline="", encoding="utf-8") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["kernel"].startswith("gemm_") and r["kernel"].endswith("x4096x14336")
        ]
    skinny = [r for r in rows if int(r["kernel"].split("_")[1].split("x")[0]) <= 128]
    shares = [4096 * 14336 * 2.0 / (float(r["time_per_call_us"]) * 1e-6) / peak for r in skinny]
    assert len(shares) == 5
    assert min(shares) > 0.75
    assert max(shares) < 0.9
    assert min(shares) <= load_profile(None).gemm_dram_efficiency <= max(shares)
