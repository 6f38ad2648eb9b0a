"""Transformer workloads -> kernels, vectorised over rows.

Inference: prefill passes (``batch`` prompts each) + decode steps under continuous batching
(``batch`` tokens per step, attention over the KV cache at the mean context length; the KV bytes
are linear in context, so the mean step is exact for them). ``output_tokens == 0`` or an encoder
means prefill/forward passes only. Training: forward, backward (dgrad + wgrad GEMMs, attention
backward ~2.5x forward), optional recomputation, AdamW update, tensor-parallel all-reduces per
layer and a data-parallel gradient all-reduce per step.
"""

from __future__ import annotations

import numpy as np

from energaizer.kernels.params import TRAINING_TOKENS_PER_MICROBATCH, RowParams
from energaizer.kernels.table import ATTENTION, COMM, GEMM, MEMORY, KernelTableBuilder

PREFILL, DECODE, FORWARD, BACKWARD, OPTIMIZER = range(5)

# Element passes over the hidden state per layer outside GEMMs/attention (fused serving stacks):
# 2 norms (read+write), 2 residual adds, rotary, activation.
ELEMENTWISE_PASSES_PER_LAYER = 12.0
ELEMENTWISE_LAUNCHES_PER_LAYER = 6.0
# Eager PyTorch (no fusion, no graphs) launches more, smaller elementwise kernels.
EAGER_EXTRA_LAUNCHES_PER_LAYER = 6.0
# Llama-style blocks launch many more in eager mode (HF Llama/Qwen2 vs BERT/OPT traces): each RMSNorm
# is ~7 kernels (fp32 cast, square, mean, add eps, rsqrt, multiply, cast back, weight) where a
# LayerNorm is one, so two norms add 12; rotary embeddings cost ~5 kernels per tensor for q and k
# (multiply by cos, negate and concatenate halves, multiply by sin, add) plus the cos/sin gathers: 12.
EAGER_RMSNORM_EXTRA_LAUNCHES_PER_LAYER = 12.0
EAGER_ROTARY_EXTRA_LAUNCHES_PER_LAYER = 12.0
# Softmax work per score element: max, subtract, exp, sum, scale.
FP_FLOPS_PER_SOFTMAX_ELEMENT = 5.0
FP32_BYTES = 4.0
# AdamW with fp32 master weights: read p, g, m, v; write p, m, v, bf16 copy.
OPTIMIZER_BYTES_PER_PARAM = 32.0
OPTIMIZER_FLOPS_PER_PARAM = 12.0


def _gemm(
    b: KernelTableBuilder, rows, phase, count, m, n, k, wb, ab, batch=1.0, weights=True, grouped=0.0
) -> None:
    """A GEMM [m x k] @ [k x n]; the B operand is a weight (element size wb) or an activation;
    ``grouped``: one MoE launch over ``batch`` experts."""
    batch = np.asarray(batch, dtype=np.float64)
    b_elem = wb if weights else ab
    nbytes = batch * (m * k * ab + k * n * b_elem + m * n * ab)
    b.add(
        rows,
        GEMM,
        phase,
        count,
        m=m,
        n=n,
        k=k,
        batch=batch,
        flops=2.0 * batch * m * n * k,
        bytes=nbytes,
        precision_bytes=np.minimum(wb, ab) if weights else ab,
        grouped=grouped,
    )


def experts_touched(experts, k, tokens) -> np.ndarray:
    """Expected number of distinct experts that ``tokens`` tokens, each routed to ``k`` of ``experts``
    (balanced routing), hit: E (1 - (1 - k/E)^T). One token hits k; many hit all E."""
    experts = np.asarray(experts, dtype=np.float64)
    share = np.clip(np.asarray(k, dtype=np.float64) / np.maximum(experts, 1.0), 0.0, 1.0)
    return np.where(experts > 0, experts * -np.expm1(tokens * np.log1p(-np.minimum(share, 1 - 1e-12))), 0.0)


def eager_score_traffic(prep_kernels, softmax_fp32, act_bytes) -> tuple[np.ndarray, np.ndarray]:
    """(kernels, DRAM bytes per score element) of eager attention between the two score GEMMs.

    Each elementwise kernel before the softmax (scale, mask add) reads and writes the scores. A
    softmax in the score dtype reads them and writes the probabilities. ``softmax(x, dtype=float32)
    .to(dtype)`` on 16-bit scores is three kernels in PyTorch (cast up, fp32 softmax, cast back: the
    EnergAIzer artifact's traces list typecast_to_fp32, softmax fp32 and typecast_to_bf16 once per
    layer). bf16 scores: Llama/Qwen2 5 kernels and 28 bytes per score, BERT 3 kernels and 12 bytes.
    """
    upcast = (np.asarray(softmax_fp32) > 0) & (act_bytes < FP32_BYTES)
    kernels = prep_kernels + np.where(upcast, 3.0, 1.0)
    softmax = np.where(upcast, 2.0 * (act_bytes + FP32_BYTES) + 2.0 * FP32_BYTES, 2.0 * act_bytes)
    return kernels, prep_kernels * 2.0 * act_bytes + softmax


def _memory(b: KernelTableBuilder, rows, phase, count, nbytes, fp_flops=0.0) -> None:
    b.add(rows, MEMORY, phase, count, bytes=nbytes, fp_flops=fp_flops)


def _allreduce(b: KernelTableBuilder, rows, phase, count, size_bytes, group) -> None:
    """Ring all-reduce of ``size_bytes`` over ``group`` GPUs: each sends 2(g-1)/g of it."""
    group = np.asarray(group, dtype=np.float64)
    sent = np.where(group > 1, 2.0 * (group - 1.0) / np.maximum(group, 1.0) * size_bytes, 0.0)
    b.add(
        rows, COMM, phase, np.where(group > 1, count, 0.0), comm_bytes=sent, bytes=2.0 * size_bytes, m=group
    )


def _layer_stack(
    b: KernelTableBuilder,
    p: RowParams,
    rows: np.ndarray,
    phase: int,
    passes,
    tokens,
    q_len,
    kv_len,
    causal,
    seqs,
    backward: bool = False,
) -> None:
    """One pass of every layer for ``tokens`` tokens (``seqs`` sequences of ``q_len`` queries
    attending to ``kv_len`` keys), repeated ``passes`` times. ``backward`` emits the backward pass."""
    passes = np.broadcast_to(np.asarray(passes, dtype=np.float64), rows.shape)
    s = {
        f: getattr(p, f)[rows]
        for f in (
            "layers",
            "dense_layers",
            "moe_layers",
            "hidden",
            "heads",
            "kv_heads",
            "head_dim",
            "ffn",
            "gated",
            "act_kernels",
            "rotary",
            "rms_norm",
            "experts",
            "active_experts",
            "expert_ffn",
            "shared_ffn",
            "tp",
            "w_bytes",
            "a_bytes",
            "eager_attention",
            "eager_dispatch",
            "score_kernels",
            "softmax_fp32",
        )
    }
    tp, wb, ab = s["tp"], s["w_bytes"], s["a_bytes"]
    d, hd = s["hidden"], s["head_dim"]
    h_loc = np.maximum(s["heads"] / tp, 1.0)
    kv_loc = np.maximum(s["kv_heads"] / tp, 1.0)
    mats = 1.0 + s["gated"]
    gm = 2.0 if backward else 1.0  # backward: dgrad + wgrad per GEMM
    L, Ld, Lm = s["layers"], s["dense_layers"], s["moe_layers"]
    T = tokens

    _gemm(b, rows, phase, passes * L * gm, T, (h_loc + 2 * kv_loc) * hd, d, wb, ab)
    _gemm(b, rows, phase, passes * L * gm, T, d, h_loc * hd, wb, ab)
    _gemm(b, rows, phase, passes * Ld * gm, T, mats * s["ffn"] / tp, d, wb, ab)
    _gemm(b, rows, phase, passes * Ld * gm, T, d, s["ffn"] / tp, wb, ab)
    # MoE: each token picks k of E experts; an expert no token picked is neither read nor computed.
    # Serving stacks and trainers run all experts of a layer as one grouped GEMM (batch = experts hit).
    experts = s["experts"]
    routed = T * s["active_experts"]
    touched = experts_touched(experts, s["active_experts"], T)
    tok_per_expert = np.where(touched > 0, routed / np.maximum(touched, 1.0), 0.0)
    ffn_e = s["expert_ffn"] / tp
    _gemm(
        b, rows, phase, passes * Lm * gm, tok_per_expert, mats * ffn_e, d, wb, ab, batch=touched, grouped=1.0
    )
    _gemm(b, rows, phase, passes * Lm * gm, tok_per_expert, d, ffn_e, wb, ab, batch=touched, grouped=1.0)
    _gemm(b, rows, phase, passes * Lm * gm * (s["shared_ffn"] > 0), T, mats * s["shared_ffn"] / tp, d, wb, ab)
    _gemm(b, rows, phase, passes * Lm * gm * (s["shared_ffn"] > 0), T, d, s["shared_ffn"] / tp, wb, ab)
    _gemm(b, rows, phase, passes * Lm * gm, T, experts, d, wb, ab)  # router

    # Attention.
    causal_f = np.where(causal, 0.5, 1.0)
    heads_total = seqs * h_loc
    attn_flops = 4.0 * heads_total * q_len * kv_len * hd * np.where(q_len > 1, causal_f, 1.0)
    kv_bytes = seqs * kv_len * 2.0 * kv_loc * hd * ab
    qo_bytes = 2.0 * seqs * q_len * h_loc * hd * ab
    fa_mult = 2.5 if backward else 1.0
    eager = s["eager_attention"] > 0
    flash_rows = ~eager
    if flash_rows.any():
        sel = flash_rows
        # Decode kernels pack the query heads that share a KV head into one tile (GQA packing), so
        # each KV block is read once per KV head: tiles = sequences x KV heads x KV blocks.
        one_q = np.broadcast_to(q_len, rows.shape) <= 1
        group = h_loc / kv_loc
        b.add(
            rows[sel],
            ATTENTION,
            phase,
            (passes * L)[sel],
            m=np.where(one_q, group, np.broadcast_to(q_len, rows.shape))[sel],
            n=np.broadcast_to(kv_len, rows.shape)[sel],
            k=hd[sel],
            batch=np.where(one_q, seqs * kv_loc, np.broadcast_to(heads_total, rows.shape))[sel],
            flops=(attn_flops * fa_mult)[sel],
            fp_flops=(5.0 * heads_total * q_len * kv_len * np.where(q_len > 1, causal_f, 1.0) * fa_mult)[sel],
            bytes=((kv_bytes + qo_bytes) * (2.0 if backward else 1.0))[sel],
            precision_bytes=ab[sel],
        )
    if eager.any():
        sel = eager
        r, cnt = rows[sel], (passes * L)[sel]
        ql = np.broadcast_to(q_len, rows.shape)[sel]
        kl = np.broadcast_to(kv_len, rows.shape)[sel]
        ht = np.broadcast_to(heads_total, rows.shape)[sel]
        _gemm(b, r, phase, cnt * gm, ql, kl, hd[sel], ab[sel], ab[sel], batch=ht, weights=False)
        _gemm(b, r, phase, cnt * gm, ql, hd[sel], kl, ab[sel], ab[sel], batch=ht, weights=False)
        kernels, per_element = eager_score_traffic(s["score_kernels"][sel], s["softmax_fp32"][sel], ab[sel])
        elements = ht * ql * kl
        _memory(
            b,
            r,
            phase,
            cnt * kernels * gm,
            per_element * elements / kernels,
            fp_flops=FP_FLOPS_PER_SOFTMAX_ELEMENT * elements / kernels,
        )

    # Norms, residuals, activations, rotary.
    act = T * d * ab
    launches = ELEMENTWISE_LAUNCHES_PER_LAYER + np.where(
        s["eager_dispatch"] > 0,
        EAGER_EXTRA_LAUNCHES_PER_LAYER
        + EAGER_RMSNORM_EXTRA_LAUNCHES_PER_LAYER * s["rms_norm"]
        + EAGER_ROTARY_EXTRA_LAUNCHES_PER_LAYER * s["rotary"],
        0.0,
    )
    _memory(
        b,
        rows,
        phase,
        passes * L * launches * gm,
        ELEMENTWISE_PASSES_PER_LAYER * act / launches + mats * T * s["ffn"] / tp * ab / launches,
        fp_flops=10.0 * T * d / launches,
    )
    # An unfused eager activation (GPT-2's gelu_new: pow, 3 multiplies, 2 adds, tanh, scale) runs
    # its extra kernels over the MLP intermediate, each reading and writing it.
    extra_act = np.where(s["eager_dispatch"] > 0, s["act_kernels"] - 1.0, 0.0)
    if (extra_act > 0).any():
        sel = extra_act > 0
        mlp_elems = (np.broadcast_to(T, rows.shape) * s["ffn"] / tp)[sel]
        _memory(
            b,
            rows[sel],
            phase,
            (passes * Ld * extra_act * gm)[sel],
            2.0 * mlp_elems * ab[sel],
            fp_flops=mlp_elems,
        )
    # Tensor-parallel all-reduces (2 per layer forward, 2 backward).
    _allreduce(b, rows, phase, passes * L * 2.0, act, tp)


def _lm_head(b: KernelTableBuilder, p: RowParams, rows, phase, passes, tokens, backward=False) -> None:
    tp, wb, ab = p.tp[rows], p.w_bytes[rows], p.a_bytes[rows]
    vocab, d = p.vocab[rows], p.hidden[rows]
    gm = 2.0 if backward else 1.0
    _gemm(b, rows, phase, passes * gm * (vocab > 0), tokens, vocab / tp, d, wb, ab)
    # sampling / cross-entropy over the logits (fp32)
    _memory(
        b, rows, phase, passes * (vocab > 0), tokens * vocab / tp * 8.0, fp_flops=5.0 * tokens * vocab / tp
    )


def add_inference(b: KernelTableBuilder, p: RowParams, rows: np.ndarray, batch_eff: np.ndarray) -> None:
    """Inference kernels for transformer rows; ``batch_eff`` is the concurrency after memory limits."""
    if rows.size == 0:
        return
    req, inp, out = p.requests[rows], p.input_tokens[rows], p.output_tokens[rows]
    B = batch_eff
    decoder = p.decoder[rows] > 0
    prefill_passes = np.ceil(req / B)
    T = B * inp
    _layer_stack(b, p, rows, PREFILL, prefill_passes, T, inp, inp, decoder, B)
    emb = T * p.hidden[rows] * p.a_bytes[rows]
    _memory(b, rows, PREFILL, prefill_passes, 2.0 * emb)
    gen = out > 0
    if gen.any():
        r = rows[gen]
        Bg, reqg, outg, inpg = B[gen], req[gen], out[gen], inp[gen]
        _lm_head(b, p, r, PREFILL, prefill_passes[gen], Bg)
        steps = reqg * outg / Bg
        ctx = inpg + outg / 2.0
        _layer_stack(b, p, r, DECODE, steps, Bg, np.ones_like(Bg), ctx, np.ones_like(Bg, dtype=bool), Bg)
        _lm_head(b, p, r, DECODE, steps, Bg)
        _memory(b, r, DECODE, steps, 2.0 * Bg * p.hidden[r] * p.a_bytes[r])


def microbatch(p: RowParams, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sequences per micro-batch, micro-batches per step) per data-parallel replica: the replica's
    sequences split evenly into the fewest micro-batches of at most TRAINING_TOKENS_PER_MICROBATCH
    tokens (gradient accumulation does not pad the last micro-batch)."""
    seqs_per_replica = np.maximum(p.global_batch[rows] / p.dp[rows], 1.0)
    mb_max = np.clip(np.floor(TRAINING_TOKENS_PER_MICROBATCH / p.seq[rows]), 1.0, seqs_per_replica)
    n_mb = np.ceil(seqs_per_replica / mb_max)
    return seqs_per_replica / n_mb, n_mb


def add_training(b: KernelTableBuilder, p: RowParams, rows: np.ndarray) -> None:
    if rows.size == 0:
        return
    seq, steps = p.seq[rows], p.steps[rows]
    mb, n_mb = microbatch(p, rows)
    passes = steps * n_mb
    T = mb * seq
    causal = p.decoder[rows] > 0
    _layer_stack(b, p, rows, FORWARD, passes, T, seq, seq, causal, mb)
    _layer_stack(b, p, rows, BACKWARD, passes, T, seq, seq, causal, mb, backward=True)
    recompute = p.recompute[rows] > 0
    if recompute.any():
        r = rows[recompute]
        _layer_stack(
            b,
            p,
            r,
            BACKWARD,
            passes[recompute],
            T[recompute],
            seq[recompute],
            seq[recompute],
            causal[recompute],
            mb[recompute],
        )
    _lm_head(b, p, rows, FORWARD, passes * p.decoder[rows], T)
    _lm_head(b, p, rows, BACKWARD, passes * p.decoder[rows], T, backward=True)
    params_gpu = p.params[rows] / p.tp[rows]
    _memory(
        b,
        rows,
        OPTIMIZER,
        steps,
        OPTIMIZER_BYTES_PER_PARAM * params_gpu,
        fp_flops=OPTIMIZER_FLOPS_PER_PARAM * params_gpu,
    )
    _allreduce(b, rows, OPTIMIZER, steps, 2.0 * params_gpu, p.dp[rows])
