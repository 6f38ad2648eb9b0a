"""Hybrid Mamba-Transformer models (Nemotron-H): Mamba-2 mixer layers with a fixed state per sequence,
a few attention layers that alone cache K and V."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from energaizer import Workload, estimate
from energaizer.catalog import get_model
from energaizer.catalog.schema import ModelArchitecture
from energaizer.kernels.params import SSM_STATE_BYTES, transformer_params

NEMOTRON = "nvidia/NVIDIA-Nemotron-Nano-12B-v2"


def serve(model: str, batch: int, input_tokens: int = 256, output_tokens: int = 512, **kw) -> Workload:
    inf = {"requests": 8 * batch, "batch_size": batch, "input_tokens": input_tokens}
    return Workload(model=model, inference={**inf, "output_tokens": output_tokens}, **kw)


def test_catalog_counts_the_blocks_of_each_type():
    a = get_model(NEMOTRON)
    assert (a.layers, a.attention_layers_, a.mamba_layers, a.mlp_layers_) == (62, 6, 28, 28)
    assert a.mamba_inner == 128 * 80
    total, active = transformer_params(a)
    # the model card's 12 B (12.31 B from the shapes: 4.7 B Mamba, 5.9 B MLP, 0.4 B attention, 1.3 B embeddings)
    assert total == pytest.approx(12.31e9, rel=0.005)
    assert active == total
    assert get_model("nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16").id == a.id
    assert transformer_params(get_model("nemotron-nano-9b-v2"))[0] == pytest.approx(8.89e9, rel=0.005)


def test_a_transformer_keeps_every_layer_for_every_block():
    a = get_model("llama-3.1-8b")
    assert (a.attention_layers_, a.mlp_layers_, a.mamba_layers, a.mamba_inner) == (32, 32, 0, 0)


def test_mamba_layers_need_their_dimensions_and_counts_fit_the_layers():
    base = {
        "id": "x",
        "arch_type": "decoder",
        "layers": 4,
        "hidden": 64,
        "heads": 4,
        "ffn": 128,
        "vocab": 100,
    }
    with pytest.raises(ValidationError, match="mamba_heads"):
        ModelArchitecture(**base, mamba_layers=2)
    with pytest.raises(ValidationError, match="attention_layers > layers"):
        ModelArchitecture(**base, attention_layers=5)


def test_only_attention_layers_cache_the_context_and_mamba_layers_hold_a_fixed_state():
    """Growing the context by 60k tokens adds the KV of the 6 attention layers only; each further
    sequence adds its Mamba states (28 layers x 128 x 80 x 128 fp32 plus the convolution's last inputs)."""

    def memory_gb(tokens: int, batch: int) -> float:
        (e,) = estimate(serve(NEMOTRON, batch, tokens, 1), "h200")
        return e.memory_required_gb

    kv_per_token = 6 * 2 * 8 * 128 * 2 / 1e9
    assert memory_gb(70_000, 1) - memory_gb(10_000, 1) == pytest.approx(60_000 * kv_per_token, rel=0.01)
    conv = (128 * 80 + 2 * 8 * 128) * 3 * 2
    state = 28 * (128 * 80 * 128 * SSM_STATE_BYTES + conv) / 1e9
    kv = 257 * kv_per_token
    assert memory_gb(256, 9) - memory_gb(256, 1) == pytest.approx(8 * (state + kv), rel=0.01)


def test_a_decode_step_reads_and_writes_every_sequences_state(one):
    """Decode is state-bound: per sequence and step the Mamba layers move their fp32 states twice (a
    read and a write: 294 MB), ~10x the attention layers' KV at 500 tokens of context, so the step
    time grows with the batch much faster than the weights' share would say (ML.ENERGY v3 on an
    H100: ~150 us per sequence per step measured)."""
    per_seq = 28 * 2 * 128 * 80 * 128 * SSM_STATE_BYTES
    e8, e128 = (one(serve(NEMOTRON, b), "h100-sxm") for b in (8, 128))

    def step_ms(e, batch):
        return 1e3 * e.duration_seconds / (8 * batch * 512 / batch)

    slope_us = 1e3 * (step_ms(e128, 128) - step_ms(e8, 8)) / 120
    assert slope_us > per_seq / 3.35e12 * 1e6  # at least the state traffic at the HBM3 peak
    assert 80 < slope_us < 250


def test_mamba_operations_appear_in_the_breakdown_of_a_hybrid_only(one):
    hybrid = one(serve(NEMOTRON, 32), "h100-sxm")
    dense = one(serve("llama-3.1-8b", 32), "h100-sxm")
    mamba_ops = ("mamba_in_proj", "mamba_out_proj", "mamba_state")
    assert all(hybrid.ops[name].energy_joules > 0 for name in mamba_ops)
    assert not {*mamba_ops, "mamba_scan"} & set(dense.ops)
    # the prefill's chunked scan: GEMM work, a small share beside the projections
    assert 0 < hybrid.ops["mamba_scan"].energy_joules < 0.1 * hybrid.ops["mamba_in_proj"].energy_joules


def test_a_hybrid_serves_long_contexts_far_cheaper_than_the_same_blocks_as_attention(one):
    """The same shapes with attention in every block (what architecture columns would describe) cache
    62 layers' K and V; at 8k tokens of context the hybrid spends a fraction of that energy."""
    dense = ModelArchitecture(
        id="dense-62",
        arch_type="decoder",
        layers=62,
        hidden=5120,
        heads=40,
        kv_heads=8,
        head_dim=128,
        ffn=20480,
        gated_mlp=False,
        vocab=131072,
    )
    w = serve(NEMOTRON, 64, 8192, 1024)
    hybrid = one(w, "h100-sxm")
    as_dense = one(w.model_copy(update={"model": None, "architecture": dense}), "h100-sxm")
    assert hybrid.energy_joules < 0.5 * as_dense.energy_joules
