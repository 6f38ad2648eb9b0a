"""Mixed-precision (autocast) training: fp32 weights and gradients cast to and from the 16-bit GEMMs."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload
from energaizer.catalog import get_gpu, get_model
from energaizer.kernels.ops import Op
from energaizer.kernels.params import build_row_params
from energaizer.kernels.table import KernelTableBuilder
from energaizer.kernels.transformer import (
    AMP_CAST_BYTES_PER_ELEMENT,
    AMP_GRAD_ACCUMULATE_BYTES,
    AMP_INPUT_CASTS_PER_LAYER,
    add_training,
    microbatch,
)


def training(precision: str = "bf16", batch: int = 8, seq: int = 1024, model: str = "gpt2") -> Workload:
    return Workload(
        model=model,
        task="training",
        precision=precision,
        training={"steps": 10, "global_batch_size": batch, "sequence_length": seq},
    )


def _op_totals(w: Workload, op: Op) -> tuple[float, float, object]:
    """(DRAM bytes, launches) of ``op`` in one training step, and the row's parameters."""
    p = build_row_params([w], [get_gpu("h100-sxm")], [get_model(w.model)])
    b = KernelTableBuilder()
    add_training(b, p, np.array([0]))
    kt = b.build()
    sel = kt.op == op
    steps = w.training.steps
    return float(np.sum(kt.bytes[sel] * kt.count[sel])) / steps, float(np.sum(kt.count[sel])) / steps, p


def test_only_16_bit_training_casts():
    assert _op_totals(training("bf16"), Op.AMP_CAST)[0] > 0
    assert _op_totals(training("fp16"), Op.AMP_CAST)[0] > 0
    assert _op_totals(training("fp32"), Op.AMP_CAST)[0] == 0
    assert _op_totals(training("tf32"), Op.AMP_CAST)[0] == 0


@pytest.mark.parametrize(("batch", "passes"), [(8, 1.0), (64, 8.0)])  # micro-batches of <= 16384 tokens
def test_weights_cast_every_pass_and_gradients_accumulate_in_fp32(batch, passes):
    w = training(batch=batch, seq=2048, model="qwen2-1.5b")
    nbytes, launches, p = _op_totals(w, Op.AMP_CAST)
    assert microbatch(p, np.array([0]))[1][0] == passes
    params = float(p.params[0])
    grads = (AMP_CAST_BYTES_PER_ELEMENT + AMP_GRAD_ACCUMULATE_BYTES * (passes - 1.0)) * params
    assert nbytes == pytest.approx(AMP_CAST_BYTES_PER_ELEMENT * params * passes + grads)
    # one cast and one gradient kernel per weight matrix (q, k, v, o, gate, up, down) and pass
    assert launches == pytest.approx(2 * 7 * p.block_pairs[0] * passes)


def test_norms_and_the_residual_stream_run_in_fp32_and_feed_cast_inputs():
    """GPT-2 (LayerNorm, plain GELU MLP): against fp32 training, the hidden-state passes move the same
    4-byte elements, the MLP intermediate 2-byte ones, and two casts per layer (6 B per element) feed
    the attention and MLP GEMMs; forward once, backward twice (gradients cast back)."""
    bf16, fp32 = training("bf16"), training("fp32")
    b_bytes, b_launches, p = _op_totals(bf16, Op.NORM_ACT)
    f_bytes, f_launches, _ = _op_totals(fp32, Op.NORM_ACT)
    tokens = 8 * 1024
    layer_passes = 3.0 * p.block_pairs[0]  # forward + backward (x2)
    hidden, ffn = tokens * p.hidden[0], tokens * p.ffn[0]
    casts = AMP_INPUT_CASTS_PER_LAYER * AMP_CAST_BYTES_PER_ELEMENT * hidden
    assert b_bytes - f_bytes == pytest.approx(layer_passes * (casts - 2.0 * ffn))
    assert b_launches - f_launches == pytest.approx(layer_passes * AMP_INPUT_CASTS_PER_LAYER)


def test_autocast_slows_small_model_training_as_measured(one):
    """GPT-2 (124 M) at 8 x 1024 tokens on an H100, measured 68-71 ms per step with torch.amp (the
    holdout rows of benchmarks/results/h100-nvml-2026-11-22); 47 ms without the autocast kernels
    (casts, fp32 norms, residual stream and gelu_new)."""
    bf16 = one(training("bf16"), "h100-sxm")
    assert 0.055 < bf16.duration_seconds / 10 < 0.075
    assert bf16.ops["amp_cast"].duration_seconds > 0.01 * bf16.duration_seconds
    assert "amp_cast" not in one(training("fp32"), "h100-sxm").ops
