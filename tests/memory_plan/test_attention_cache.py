"""The KV cache follows the attention: MLA caches one latent + rope key per token and layer
(replicated over tensor parallelism), sliding-window layers cache at most the window."""

from __future__ import annotations

import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_model


def memory_gb(model: str, gpu: str, gpus: int, tokens: int, precision: str = "bf16", batch: int = 1) -> float:
    inf = {"requests": batch, "batch_size": batch, "input_tokens": tokens, "output_tokens": 1}
    (e,) = estimate(Workload(model=model, precision=precision, gpu_count=gpus, inference=inf), gpu)
    return e.memory_required_gb


def test_catalog_describes_mla_and_sliding_windows():
    ds = get_model("deepseek-v3")
    assert (ds.kv_lora_rank, ds.qk_rope_head_dim) == (512, 64)
    assert ds.kv_elements_per_token == 576
    assert get_model("gemma-2-9b").windowed_layer_fraction == pytest.approx(0.5)
    assert get_model("gemma-3-27b").windowed_layer_fraction == pytest.approx(5 / 6)
    assert get_model("llama-3.1-8b").kv_elements_per_token == 2 * 8 * 128


def test_mla_caches_the_latent_on_every_tensor_parallel_rank():
    """DeepSeek-V3: 61 layers x 576 bf16 elements = 70 KB per token on every GPU (not 128 heads x 128
    dims x 2, which would be 4 MB per token, split over the ranks)."""
    per_token = 61 * 576 * 2 / 1e9
    short = memory_gb("deepseek-v3", "b200", 8, 1000, "fp8")
    long = memory_gb("deepseek-v3", "b200", 8, 101_000, "fp8")
    assert long - short == pytest.approx(100_000 * per_token, rel=0.01)


def test_sliding_window_layers_cache_at_most_the_window():
    """Gemma 3: five of six layers cache at most 1024 tokens; growing the context by 64k tokens adds
    only the global layers' share."""
    a = get_model("gemma-3-27b")
    per_token_all = a.layers * a.kv_elements_per_token * 2 / 1e9
    grow = memory_gb("gemma-3-27b", "h200", 1, 70_000) - memory_gb("gemma-3-27b", "h200", 1, 6_000)
    assert grow == pytest.approx(64_000 * per_token_all / 6, rel=0.01)
    # below the window every layer caches the whole context
    small = memory_gb("gemma-3-27b", "h200", 1, 1000) - memory_gb("gemma-3-27b", "h200", 1, 500)
    assert small == pytest.approx(500 * per_token_all, rel=0.01)


def test_mla_serving_runs_at_the_concurrency_that_fits():
    """With the latent cache, 256 concurrent 3k-token requests fit on 8 H200s; the time falls with the batch."""
    inf = {"requests": 2000, "input_tokens": 2000, "output_tokens": 1000}
    t = {}
    for b in (32, 256):
        w = Workload(model="deepseek-v3", precision="fp8", gpu_count=8, inference={**inf, "batch_size": b})
        (e,) = estimate(w, "h200")
        t[b] = e.duration_seconds
    assert t[256] < 0.5 * t[32]
