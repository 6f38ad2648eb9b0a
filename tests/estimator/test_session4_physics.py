"""Physics added after the third calibration pass: even micro-batch splits, tile-shape choice,
one dynamic-power scale per die, and the low-precision grouped expert GEMM efficiency."""

from __future__ import annotations

import pytest
from gemm_support import gemm_at_max_clock

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu, get_model
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import GEMM_TILE_SHAPES


def one(w: Workload, gpu: str, profile: CalibrationProfile | None = None):
    (e,) = estimate(w, gpu, profile=profile)
    return e


def train(batch: int, seq: int, model: str = "bert-base") -> Workload:
    return Workload(
        model=model,
        task="training",
        precision="fp32",
        training={"steps": 100, "global_batch_size": batch, "sequence_length": seq},
    )


def test_gradient_accumulation_does_not_pad_the_last_micro_batch():
    """48 sequences of 384 tokens exceed one micro-batch (16k tokens): they run as 2 x 24, so the
    time per sequence stays where 40 sequences put it (it used to jump ~70 % with a padded 2 x 42)."""
    t40 = one(train(40, 384), "v100-sxm2-32gb").duration_seconds / 40
    t48 = one(train(48, 384), "v100-sxm2-32gb").duration_seconds / 48
    assert t48 == pytest.approx(t40, rel=0.1)


def _gemm_time(m: float, n: float, k: float, gpu: str, precision: str) -> float:
    return gemm_at_max_clock(m, n, k, gpu, precision)[0]


def test_smaller_tiles_fill_the_machine():
    """1024 x 768 output on 80 SMs: 48 tiles of 128 x 128 leave 32 SMs idle; a library picks a
    smaller tile so that twice the rows cost about twice the time, not three times."""
    t512 = _gemm_time(512, 768, 768, "v100-sxm2-32gb", "fp32")
    t1024 = _gemm_time(1024, 768, 768, "v100-sxm2-32gb", "fp32")
    assert t1024 / t512 < 2.3
    assert len(GEMM_TILE_SHAPES) >= 2


def test_large_gemm_keeps_the_big_tile_rate():
    """A large bf16 GEMM on H100 takes the widest tile (128 x 256), whose operand staging per FLOP is the
    smallest: 2048 tiles over 132 SMs = 16 waves of math plus staging; a 128 x 128 tile would stage a
    third more bytes per FLOP and is not chosen."""
    m = n = k = 8192.0
    t = _gemm_time(m, n, k, "h100-sxm", "bf16")
    g = get_gpu("h100-sxm")
    prof = CalibrationProfile()
    f = g.max_clock_mhz * 1e6
    rate_per_sm = g.peak_tflops["bf16"] * 1e12 * g.max_clock_mhz / g.tensor_clock_mhz / g.sm_count
    math = 2 * 128 * 256 * k / (rate_per_sm * prof.compute_efficiency)
    staging = (128 + 256) * k * 2 / (prof.operand_feed_bytes_per_cycle * f)
    widest = 16 * (math + staging)
    assert widest < t < 1.02 * widest  # + the per-wave overhead
    square = (
        2
        * 16
        * (
            2 * 128 * 128 * k / (rate_per_sm * prof.compute_efficiency)
            + 256 * k * 2 / (prof.operand_feed_bytes_per_cycle * f)
        )
    )
    assert t < square


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


def _moe(precision: str, model: str = "Qwen/Qwen3-235B-A22B-Instruct-2507") -> Workload:
    return Workload(
        model=model,
        precision=precision,
        gpu_count=8,
        inference={"requests": 256, "input_tokens": 256, "output_tokens": 256, "batch_size": 32},
    )


@pytest.mark.parametrize(
    ("precision", "model", "slower"),
    [
        ("fp8", "Qwen/Qwen3-235B-A22B-Instruct-2507", True),  # fp8 grouped expert GEMMs
        ("bf16", "Qwen/Qwen3-235B-A22B-Instruct-2507", False),  # bf16 experts: unaffected
        ("fp8", "llama-3.1-70b", False),  # dense fp8: no grouped GEMM
    ],
)
def test_quantized_expert_efficiency_only_slows_low_precision_experts(precision, model, slower):
    fast = CalibrationProfile(quantized_expert_efficiency=1.0)
    slow = CalibrationProfile(quantized_expert_efficiency=0.5)
    w = _moe(precision, model)
    t_fast = one(w, "h100-sxm", fast).duration_seconds
    t_slow = one(w, "h100-sxm", slow).duration_seconds
    if slower:
        assert t_slow > 1.1 * t_fast
    else:
        assert t_slow == pytest.approx(t_fast, rel=1e-9)


def test_rotary_and_rms_norm_set_the_eager_launches_not_the_mlp():
    """GPT-NeoX blocks (rotary, LayerNorm, 2-matrix GELU MLP) pay the rotary kernels but not the
    RMSNorm ones: between a GPT-2-style block and a Llama-style one."""

    def launches(arch) -> float:
        w = Workload(architecture=arch, inference={"requests": 1, "input_tokens": 128, "output_tokens": 0})
        (e,) = estimate(w, "a100-pcie-40gb")
        return e.kernel_launches

    pythia = get_model("pythia-12b")
    assert pythia.rotary_embeddings and not pythia.gated_mlp
    base = launches(pythia)
    learned = launches(pythia.model_copy(update={"rotary_embeddings": False}))
    rms = launches(pythia.model_copy(update={"rms_norm": True}))
    assert base - learned == pytest.approx(12 * pythia.layers, abs=1)
    assert rms - base == pytest.approx(12 * pythia.layers, abs=1)
    assert launches(get_model("gpt2")) / 12 < launches(get_model("qwen2-1.5b")) / 28
