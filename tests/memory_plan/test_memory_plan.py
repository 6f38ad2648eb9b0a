"""The memory plan: feasibility and the concurrency that fits."""

from __future__ import annotations

import pytest


def test_model_that_does_not_fit_is_infeasible_with_reason(one, llama_serving):
    e = one(llama_serving(model="llama-3.1-405b"), "l4")
    assert not e.feasible
    assert "does not fit" in e.reason and "l4" in e.reason
    ok = one(llama_serving(model="llama-3.1-405b", gpu_count=8, precision="fp8"), "h200")
    assert ok.feasible and ok.reason == ""


def test_paged_kv_concurrency_uses_mean_context(one, serving):
    """Concurrency is limited by the KV cache a running sequence holds on average (prompt + half
    the output), so a batch that fits only at mean length still runs at full concurrency."""
    w = serving("llama-3.1-70b", 1024, gpus=4, inference={"input_tokens": 256, "output_tokens": 1024})
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


def test_a_scoring_pass_holds_its_prompts_logits(one):
    """prompt_logits: each prompt in flight holds input_tokens x vocabulary 16-bit logits (Llama-3.1-8B:
    8192 x 128256 x 2 B = 2.1 GB, twice its KV cache), which limits the prompts per pass; a prompt whose
    logits alone exceed the GPU does not fit, and the reason says what."""
    from energaizer import Workload

    def scoring(input_tokens: int, prompt_logits: bool) -> Workload:
        inf = {"requests": 64, "input_tokens": input_tokens, "output_tokens": 0, "batch_size": 32}
        return Workload(model="llama-3.1-8b", inference={**inf, "prompt_logits": prompt_logits})

    plain, scored = one(scoring(8192, False), "h100-sxm"), one(scoring(8192, True), "h100-sxm")
    weights, kv, logits = 8.03e9 * 2 + 1e9, 8192 * 32 * 2 * 8 * 128 * 2, 8192 * 128256 * 2
    assert plain.memory_required_gb * 1e9 == pytest.approx(weights + 32 * kv, rel=0.01)
    fits = (80e9 * 0.92 - weights) // (kv + logits)
    assert fits < 32
    assert scored.memory_required_gb * 1e9 == pytest.approx(weights + fits * (kv + logits), rel=0.01)
    too_long = one(scoring(200_000, True), "l4")
    assert not too_long.feasible and "KV cache and prompt logits of one request" in too_long.reason
    assert one(scoring(200_000, False), "h100-sxm").feasible
