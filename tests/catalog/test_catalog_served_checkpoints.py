"""Widely served checkpoints that `estimate --from-csv` rows name by Hugging Face id: each resolves to an
entry whose shapes add up to its stated parameter count, and keeps the attention and expert format its
config.json gives it."""

from __future__ import annotations

import pytest

from energaizer import catalog
from energaizer.kernels.params import layer_counts, transformer_params

# Hugging Face id -> the entry it resolves to (its own or the one whose language-model shapes it shares)
SERVED_CHECKPOINTS = {
    "moonshotai/Kimi-K2-Instruct": "kimi-k2",
    "moonshotai/Kimi-K2-Instruct-0905": "kimi-k2",
    "moonshotai/Kimi-K2-Thinking": "kimi-k2-thinking",
    "zai-org/GLM-4.5": "glm-4.5",
    "Qwen/Qwen2-7B-Instruct": "qwen2.5-7b",
    "Qwen/Qwen2-72B-Instruct": "qwen2.5-72b",
    "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2.5-7b",
    "Qwen/Qwen2.5-VL-72B-Instruct": "qwen2.5-72b",
    "google/gemma-2b-it": "codegemma-2b",
    "google/gemma-7b-it": "codegemma-7b",
    "deepseek-ai/deepseek-coder-33b-instruct": "deepseek-coder-33b",
    "01-ai/Yi-1.5-34B-Chat": "yi-1.5-34b",
    "CohereForAI/c4ai-command-r-v01": "command-r-v01",
    "databricks/dbrx-instruct": "dbrx",
    "llava-hf/llava-v1.6-mistral-7b-hf": "llava-v1.6-mistral-7b",
    "microsoft/Phi-3-vision-128k-instruct": "phi-3-mini",
    "deepseek-ai/DeepSeek-V3.2-Exp": "deepseek-v3",
}

# the stated totals these entries were checked against, and the tolerance of a count from shapes that
# ignores norms, biases and MLA's low-rank projections (Kimi K2: +0.8 %) or leaves out an MTP layer
# (GLM-4.5: -0.6 %)
SHAPE_COUNT_TOLERANCE = 0.03


@pytest.mark.parametrize(("name", "model_id"), sorted(SERVED_CHECKPOINTS.items()))
def test_served_checkpoint_resolves(name: str, model_id: str) -> None:
    assert catalog.get_model(name).id == model_id


@pytest.mark.parametrize("model_id", sorted(set(SERVED_CHECKPOINTS.values())))
def test_shapes_add_up_to_the_stated_size(model_id: str) -> None:
    model = catalog.get_model(model_id)
    total, active = transformer_params(model)
    assert model.params_b is not None
    assert total / 1e9 == pytest.approx(model.params_b, rel=SHAPE_COUNT_TOLERANCE), model_id
    assert active <= total


def test_kimi_k2_is_deepseek_v3_with_384_experts() -> None:
    k2, thinking, v3 = (catalog.get_model(n) for n in ("kimi-k2", "kimi-k2-thinking", "deepseek-v3"))
    for model in (k2, thinking):
        assert model.kv_elements_per_token == v3.kv_elements_per_token == 512 + 64  # the MLA latent
        assert (model.moe_experts, model.moe_active_experts, model.heads) == (384, 8, 64)
        assert layer_counts(model) == (61, 1, 60)  # one dense layer (first_k_dense_replace 1)
        dims = ("layers", "hidden", "head_dim", "ffn", "vocab", "moe_expert_ffn", "moe_shared_ffn")
        assert {f: getattr(model, f) for f in dims} == {f: getattr(k2, f) for f in dims}
    # the Instruct checkpoints ship FP8 experts, the Thinking one 4-bit (INT4 QAT) experts
    assert (k2.expert_precision, thinking.expert_precision) == ("fp8", "fp4")
    # 1.03 T parameters: a bf16 row holds the FP8 experts at 1 B, the INT4 ones at 0.5 B per weight
    assert transformer_params(k2)[0] / 1e12 == pytest.approx(1.03, rel=0.01)


def test_glm_45_keeps_three_dense_layers() -> None:
    glm, air = catalog.get_model("zai-org/GLM-4.5"), catalog.get_model("zai-org/GLM-4.5-Air")
    assert layer_counts(glm) == (92, 3, 89)
    assert layer_counts(air) == (46, 1, 45)
    assert (glm.moe_experts, glm.moe_expert_ffn, glm.moe_shared_ffn) == (160, 1536, 1536)
    assert glm.kv_elements_per_token == 2 * 8 * 128


def test_language_models_of_vision_checkpoints_are_not_their_namesakes() -> None:
    # LLaVA-NeXT-Mistral's decoder is Mistral-7B-Instruct-v0.2 with 64 added tokens: not v0.3's vocabulary
    llava, mistral = catalog.get_model("llava-hf/llava-v1.6-mistral-7b-hf"), catalog.get_model("mistral-7b")
    assert (llava.vocab, mistral.vocab) == (32064, 32768)
    assert (llava.layers, llava.hidden, llava.kv_heads, llava.ffn) == (32, 4096, 8, 14336)


def test_dense_checkpoints_keep_their_attention() -> None:
    command_r = catalog.get_model("CohereForAI/c4ai-command-r-v01")
    assert command_r.kv_heads == command_r.heads == 64 and command_r.tied_embeddings
    assert not command_r.rms_norm  # LayerNorm
    dbrx = catalog.get_model("databricks/dbrx-instruct")
    assert (dbrx.moe_experts, dbrx.moe_active_experts, dbrx.kv_heads) == (16, 4, 8)
    assert transformer_params(dbrx)[1] / 1e9 == pytest.approx(36, rel=0.03)  # 36 B active
    for name in ("deepseek-ai/deepseek-coder-33b-instruct", "01-ai/Yi-1.5-34B-Chat"):
        model = catalog.get_model(name)
        assert (model.hidden, model.heads, model.kv_heads, model.head_dim_) == (7168, 56, 8, 128)
