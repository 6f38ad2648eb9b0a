"""Widely served checkpoints that `estimate --from-csv` rows name by Hugging Face id: each resolves to an
entry whose shapes add up to its stated parameter count, and keeps the attention and expert format its
config.json gives it."""

from __future__ import annotations

import pytest

from energaizer import catalog
from energaizer.kernels.params import transformer_params

# Hugging Face id -> the entry it resolves to (its own or the one whose language-model shapes it shares)
SERVED_CHECKPOINTS = {
    "Qwen/Qwen2-7B-Instruct": "qwen2.5-7b",
    "Qwen/Qwen2-72B-Instruct": "qwen2.5-72b",
    "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2.5-7b",
    "Qwen/Qwen2.5-VL-72B-Instruct": "qwen2.5-72b",
    "google/gemma-2b-it": "codegemma-2b",
    "google/gemma-7b-it": "codegemma-7b",
    "microsoft/Phi-3-vision-128k-instruct": "phi-3-mini",
    "deepseek-ai/DeepSeek-V3.2-Exp": "deepseek-v3",
}

# the stated totals these entries were checked against, and the tolerance of a count from shapes that
# ignores norms, biases and MLA's low-rank projections or leaves out an MTP layer
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
