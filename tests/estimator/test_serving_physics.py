"""Serving-scale physics: MoE expert routing, paged KV concurrency, legacy-engine TP workers,
eager launch counts of Llama-style blocks, GPU activity during host gaps."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_model
from energaizer.kernels.transformer import experts_touched
from energaizer.profile import CalibrationProfile


def one(w: Workload, gpu: str, profile: CalibrationProfile | None = None):
    (e,) = estimate(w, gpu, profile=profile)
    return e


def serve(model: str, batch: int, gpus: int = 1, **kw) -> Workload:
    inf = {"requests": 8 * batch, "input_tokens": 256, "output_tokens": 512, "batch_size": batch}
    inf.update(kw.pop("inference", {}))
    return Workload(model=model, gpu_count=gpus, inference=inf, **kw)


def per_step(e, w: Workload) -> float:
    inf = w.inference
    return e.duration_seconds / (inf.requests * inf.output_tokens / inf.batch_size)


def test_experts_touched_limits():
    e = np.array([128.0, 128.0, 128.0, 8.0])
    k = np.array([8.0, 8.0, 8.0, 2.0])
    t = np.array([1.0, 16.0, 10_000.0, 64.0])
    hit = experts_touched(e, k, t)
    assert hit[0] == pytest.approx(8.0)  # one token hits exactly its k experts
    assert 64.0 < hit[1] < 128.0  # 16 tokens x 8 picks overlap: ~82 distinct, not 128
    assert hit[1] == pytest.approx(128 * (1 - (1 - 8 / 128) ** 16))
    assert hit[2] == pytest.approx(128.0)
    assert hit[3] == pytest.approx(8.0)
    assert experts_touched(np.array([0.0]), np.array([0.0]), np.array([5.0]))[0] == 0.0


def test_moe_decode_step_grows_smoothly_with_batch():
    """Doubling a small decode batch reads the experts the new tokens hit, not every expert."""
    model = "Qwen/Qwen3-235B-A22B-Instruct-2507"
    steps = []
    for b in (8, 16, 32):
        w = serve(model, b, gpus=8)
        steps.append(per_step(one(w, "h100-sxm"), w))
    assert steps[0] < steps[1] < steps[2]
    assert steps[1] / steps[0] < 1.45
    assert steps[2] / steps[1] < 1.45


def test_paged_kv_concurrency_uses_mean_context():
    """Concurrency is limited by the KV cache a running sequence holds on average (prompt + half
    the output), so a batch that fits only at mean length still runs at full concurrency."""
    w = serve("llama-3.1-70b", 1024, gpus=4, inference={"input_tokens": 256, "output_tokens": 1024})
    e = one(w, "h100-sxm")
    assert e.feasible
    # KV per token: 80 layers x 2 (K, V) x 2 local KV heads x 128 x 2 B; weights 35 GB per GPU.
    kv_tok = 80 * 2 * 2 * 128 * 2
    usable = 80e9 * 0.92 - 70.6e9 * 2 / 4 - 1e9
    full_fit = usable // (kv_tok * (256 + 1024))
    mean_fit = usable // (kv_tok * (256 + 512))
    assert full_fit < mean_fit < 1024
    weights = e.memory_required_gb * 1e9 - mean_fit * kv_tok * (256 + 512)
    assert weights == pytest.approx(70.6e9 * 2 / 4 + 1e9, rel=0.02)  # ran at mean_fit concurrency


def test_legacy_engine_pays_per_extra_tensor_parallel_worker():
    prof = CalibrationProfile(legacy_worker_overhead_ms=5.0)
    w2 = serve("llama-3.1-70b", 64, gpus=2, execution="legacy-engine", precision="fp8")
    w8 = serve("llama-3.1-70b", 64, gpus=8, execution="legacy-engine", precision="fp8")
    g2 = one(w2, "h100-sxm", prof).time_breakdown["overhead"] / (w2.inference.requests * 512 / 64)
    g8 = one(w8, "h100-sxm", prof).time_breakdown["overhead"] / (w8.inference.requests * 512 / 64)
    assert g8 - g2 == pytest.approx(6 * 5e-3, rel=0.02)
    # a current engine does not
    c2 = serve("llama-3.1-70b", 64, gpus=2, execution="graphs", precision="fp8")
    c8 = serve("llama-3.1-70b", 64, gpus=8, execution="graphs", precision="fp8")
    assert one(c2, "h100-sxm", prof).time_breakdown["overhead"] == pytest.approx(
        one(c8, "h100-sxm", prof).time_breakdown["overhead"], rel=1e-6
    )


def test_llama_style_blocks_launch_more_eager_kernels_per_layer():
    """RMSNorm in fp32, rotary and the gated MLP are many small kernels in eager PyTorch."""

    def launches_per_layer(model: str, layers: int) -> float:
        w = Workload(model=model, inference={"requests": 1, "input_tokens": 128, "output_tokens": 0})
        return one(w, "a100-pcie-40gb").kernel_launches / layers

    bert = launches_per_layer("bert-large-uncased", 24)
    qwen = launches_per_layer("Qwen/Qwen2-1.5B", 28)
    assert 15 <= bert <= 30
    assert qwen - bert == pytest.approx(24, abs=3)


def test_host_gaps_draw_more_than_parked_idle_power():
    w = Workload(model="gpt2", inference={"requests": 1, "input_tokens": 32, "output_tokens": 0})
    quiet = one(w, "a100-pcie-40gb", CalibrationProfile(gap_activity=0.0))
    busy = one(w, "a100-pcie-40gb", CalibrationProfile(gap_activity=0.5))
    assert busy.duration_seconds == pytest.approx(quiet.duration_seconds)
    assert busy.breakdown["overhead"] > quiet.breakdown["overhead"] > 0


def test_unfused_eager_activation_adds_kernels_and_traffic():
    """GPT-2's gelu_new is 8 elementwise kernels over the MLP intermediate in eager PyTorch."""
    arch = get_model("gpt2")
    fused = arch.model_copy(update={"eager_activation_kernels": 1})
    inf = {"requests": 8, "batch_size": 8, "input_tokens": 512, "output_tokens": 0}
    e_new = one(Workload(architecture=arch, inference=inf), "a100-pcie-40gb")
    e_fused = one(Workload(architecture=fused, inference=inf), "a100-pcie-40gb")
    assert e_new.kernel_launches - e_fused.kernel_launches == 7 * 12
    assert e_new.duration_seconds > e_fused.duration_seconds
    # a serving engine fuses the activation: no difference there
    gen = {"requests": 64, "batch_size": 32, "input_tokens": 128, "output_tokens": 64}
    g_new = one(Workload(architecture=arch, inference=gen), "a100-pcie-40gb")
    g_fused = one(Workload(architecture=fused, inference=gen), "a100-pcie-40gb")
    assert g_new.duration_seconds == pytest.approx(g_fused.duration_seconds)
