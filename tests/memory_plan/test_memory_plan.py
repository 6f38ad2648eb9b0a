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
