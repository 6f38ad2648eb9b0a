"""Transformer workloads -> kernels, vectorised over rows: one emitter per operation.

Inference: prefill passes (at most ``concurrency`` prompts each, the prompts split evenly over them) +
decode steps under continuous batching (``concurrency`` tokens per step, attention over the KV cache at the mean context length; the KV
bytes are linear in context, so the mean step is exact for them). ``output_tokens == 0`` or an
encoder means prefill/forward passes only. Training: forward, backward (dgrad + wgrad GEMMs,
attention backward ~2.5x forward), optional recomputation, AdamW update, tensor-parallel
all-reduces per layer and a data-parallel gradient all-reduce per step.

:class:`LayerPass` holds the geometry of one pass over every layer; its methods (``qkv_proj``,
``attn_out``, ``mlp_up``, ... , ``tp_allreduce``) each add the kernels of one :class:`Op`.
"""

from __future__ import annotations

from functools import cache
from math import erf, pi, sqrt

import numpy as np

from energaizer.kernels.builders import all_to_all, allreduce, gemm, memory, optimizer_step
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.params import (
    SSM_STATE_BYTES,
    TRAINING_TOKENS_PER_MICROBATCH,
    RowParams,
    cached_tokens,
    kv_elements_per_gpu,
    mamba_conv_channels,
    mamba_in_width,
    mamba_state_bytes,
)
from energaizer.kernels.table import KernelTableBuilder

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
# Sampling in a serving engine: today's chat models ship generation configs with top-p / top-k
# (Llama 3 top_p 0.9, Qwen3 top_k 20 + top_p 0.8, Gemma 3 top_k 64 + top_p 0.95), which vLLM applies
# by default, and vLLM's sampler (V1 native path, FlashInfer's is opt-in; V0 alike) sorts every
# sequence's fp32 logits over the whole vocabulary. DRAM bytes per logit: cast to fp32 (2 + 4),
# temperature (8), segmented radix sort of fp32 keys with int64 indices (4 digit passes reading and
# writing 12 B each, plus the index init: ~100), top-k mask (14), top-p softmax + cumsum + mask (34),
# scatter back (16), softmax (12), exponential noise, divide and argmax (20).
SAMPLING_BYTES_PER_LOGIT = 210.0
SAMPLING_FP_FLOPS_PER_LOGIT = 30.0  # two softmaxes, cumsum, noise, compares
# Eager code (HF ``generate``, training losses): one fp32 pass over the logits (read + write).
LOGIT_PASS_BYTES = 8.0
# 16-bit training as PyTorch's autocast runs it (torch.amp, HF Trainer ``bf16``/``fp16``): the weights
# and their gradients stay fp32. Every forward pass casts each weight to 16 bit for its GEMM (read 4 B,
# write 2 B per parameter; the cast is cached for that pass only); each weight's 16-bit gradient is
# copied into its fp32 ``.grad`` (read 2, write 4) and, on later micro-batches, added to it (read 2 + 4,
# write 4). Norms run in fp32 and the residual stream they feed is fp32, so each GEMM input off it is
# cast to 16 bit (read 4, write 2 per element; its gradient is cast back) and the hidden-state passes
# move 4-byte elements. torch.profiler on an H100 (benchmarks/results/h100-nvml-2026-11-22/profile):
# BERT-large and GPT-2 steps run ``bfloat16_copy`` and fp32 ``direct_copy`` kernels, fp32 LayerNorm
# and fp32 residual adds; GPT-2's ``gelu_new`` runs in fp32 after its ``pow`` (autocast's fp32 list).
AMP_CAST_BYTES_PER_ELEMENT = 6.0  # a conversion between fp32 and 16 bit: weights, gradients, GEMM inputs
AMP_GRAD_ACCUMULATE_BYTES = 10.0
AMP_INPUT_CASTS_PER_LAYER = 2.0  # the attention and MLP inputs (fused projections: one cast each)
# Mamba-2 (vLLM's and mamba_ssm's Triton kernels): tokens per chunk of the prefill scan (Nemotron-H
# configs: chunk_size 128), and kernels per layer beside the GEMMs (causal conv, state update or
# chunk-state passes, gated RMSNorm)
MAMBA_CHUNK = 128.0
MAMBA_STATE_LAUNCHES = 3.0
# vLLM's silu_and_mul: a sigmoid (exp, add, divide) and two multiplies per output element
SILU_MUL_FLOPS_PER_ELEMENT = 5.0


def experts_touched(experts, k, tokens) -> np.ndarray:
    """Expected number of distinct experts that ``tokens`` tokens, each routed to ``k`` of ``experts``
    (balanced routing), hit: E (1 - (1 - k/E)^T). One token hits k; many hit all E."""
    experts = np.asarray(experts, dtype=np.float64)
    share = np.clip(np.asarray(k, dtype=np.float64) / np.maximum(experts, 1.0), 0.0, 1.0)
    return np.where(experts > 0, experts * -np.expm1(tokens * np.log1p(-np.minimum(share, 1 - 1e-12))), 0.0)


def padded_expert_rows(tokens, k, local_experts, block_rows) -> np.ndarray:
    """Rows a grouped expert GEMM computes on one GPU when it runs its worst-case buffer whole (vLLM's
    DeepGEMM path for block-scaled FP8 experts, energaizer.hardware.GROUPED_FP8_BLOCK_ROWS): ``tokens`` x
    ``k`` slots plus ``block_rows`` - 1 for each of the ``local_experts``, rounded up to a whole block;
    0 where ``block_rows`` is 0 (the kernel computes the routed rows only)."""
    block = np.maximum(np.asarray(block_rows, dtype=np.float64), 1.0)
    rows = np.ceil((tokens * k + local_experts * (block - 1.0)) / block) * block
    return np.where(np.asarray(block_rows) > 0, rows, 0.0)


@cache
def expected_max_normal(ranks: int) -> float:
    """E[max of ``ranks`` independent standard normals] (0 for one; 1/sqrt(pi) for two; 1.42 for
    eight), by quadrature of x d/dx Phi(x)^ranks."""
    if ranks <= 1:
        return 0.0
    x = np.linspace(-9.0, 9.0, 3601)
    cdf = 0.5 * (1.0 + np.array([erf(v / sqrt(2.0)) for v in x]))
    pdf = np.exp(-0.5 * x * x) / sqrt(2.0 * pi)
    return float(np.sum(x * ranks * pdf * cdf ** (ranks - 1)) * (x[1] - x[0]))


def busiest_rank_experts(experts, touched, ranks) -> np.ndarray:
    """Experts the busiest of ``ranks`` expert-parallel GPUs holds among the ``touched`` of ``experts``
    a step's tokens hit (each expert hit with probability p = touched / experts): each rank's count is
    binomial over its experts / ranks (mean n p, variance n p (1 - p)), and the layer waits for the
    largest, about mean + E[max of ranks normals] x sd, at most all of the rank's experts. (The
    routed slots' Poisson bound, mean + sqrt(2 mean ln ranks), overstated it: 11.1 of 16 experts for
    Qwen3-235B at 8 sequences on 8 GPUs against this 9.2, and ML.ENERGY v3's decode steps there ran
    1.09-1.13x their measured inter-token latency at batch 8-16, now 0.97-1.00.)"""
    experts = np.asarray(experts, dtype=np.float64)
    ranks = np.maximum(np.asarray(ranks, dtype=np.float64), 1.0)
    per_rank = experts / ranks
    p = np.clip(np.asarray(touched, dtype=np.float64) / np.maximum(experts, 1.0), 0.0, 1.0)
    degrees, which = np.unique(ranks, return_inverse=True)
    spread = np.array([expected_max_normal(int(r)) for r in degrees])[which].reshape(ranks.shape)
    busiest = per_rank * p + spread * np.sqrt(per_rank * p * (1.0 - p))  # spread 0 on one rank: n p
    return np.minimum(busiest, per_rank)


def eager_score_traffic(prep_kernels, softmax_fp32, act_bytes) -> tuple[np.ndarray, np.ndarray]:
    """(kernels, DRAM bytes per score element) of eager attention between the two score GEMMs.

    Each elementwise kernel before the softmax (scale, mask add) reads and writes the scores. A
    softmax in the score dtype reads them and writes the probabilities. ``softmax(x, dtype=float32)
    .to(dtype)`` on 16-bit scores is three kernels in PyTorch (cast up, fp32 softmax, cast back: the
    EnergAIzer artifact's traces list typecast_to_fp32, softmax fp32 and typecast_to_bf16 once per
    layer). bf16 scores: Llama/Qwen2 5 kernels and 28 bytes per score, BERT 3 kernels and 12 bytes.
    """
    upcast = np.asarray(softmax_fp32, dtype=bool) & (act_bytes < FP32_BYTES)
    kernels = prep_kernels + np.where(upcast, 3.0, 1.0)
    softmax = np.where(upcast, 2.0 * (act_bytes + FP32_BYTES) + 2.0 * FP32_BYTES, 2.0 * act_bytes)
    return kernels, prep_kernels * 2.0 * act_bytes + softmax


def eager_elementwise_bytes(act_bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bytes the unfused eager kernels move beyond the fused passes' read-and-write of each tensor:
    (per hidden element per RMSNorm, per q/k element for rotary embeddings, per MLP element for the
    gate x up multiply). HF RMSNorm: cast to fp32 (a + 4), square (8), mean (4), scale (8), cast back
    (4 + a), weight (2a): 20 B + the casts beyond the fused pass's 2a (Qwen2-1.5B bf16 on an H100:
    the torch.profiler list shows these kernels at 2-3.1 TB/s over exactly those tensors). Rotary:
    x cos (2a), negated half (a), concatenation (2a), x sin (2a), add (3a): 10a, 8a beyond the fused
    pass. ``act(gate) * up``: the multiply reads two and writes one MLP tensor (3a) after the
    activation's read and write."""
    a = np.asarray(act_bytes, dtype=np.float64)
    casts = np.where(a < FP32_BYTES, 2.0 * (a + FP32_BYTES), 0.0)
    return 20.0 + casts, 8.0 * a, 3.0 * a


class LayerPass:
    """One pass of every layer for ``tokens`` tokens of each of ``rows`` (``seqs`` sequences of
    ``q_len`` queries attending to ``kv_len`` keys), repeated ``passes`` times; ``backward`` makes it
    the backward pass (dgrad + wgrad GEMMs, attention backward 2.5x the forward)."""

    def __init__(
        self,
        p: RowParams,
        rows: np.ndarray,
        phase: Phase,
        passes,
        tokens,
        q_len,
        kv_len,
        causal,
        seqs,
        backward: bool = False,
    ) -> None:
        self.rows, self.phase, self.backward = rows, phase, backward
        self.passes = np.broadcast_to(np.asarray(passes, dtype=np.float64), rows.shape)
        self.tokens, self.q_len, self.kv_len, self.causal, self.seqs = tokens, q_len, kv_len, causal, seqs
        self.s = s = p.take(rows)
        self.h_loc = np.maximum(s.heads / s.tp, 1.0)  # query heads per GPU
        self.kv_loc = np.maximum(s.kv_heads / s.tp, 1.0)  # KV heads per GPU
        self.mats = 1.0 + s.gated  # MLP input matrices: up (and gate)
        self.gm = 2.0 if backward else 1.0  # backward: dgrad + wgrad per GEMM
        self.amp = autocast(s.training, s.a_bytes)
        # autocast keeps the residual stream (and GPT-2's activation chain after its pow) in fp32
        self.stream_bytes = np.where(self.amp, FP32_BYTES, s.a_bytes)

    def emit(self, b: KernelTableBuilder) -> None:
        """Every operation of the pass, in table order."""
        self.qkv_proj(b)
        self.attn_out(b)
        self.mlp_up(b)
        self.mlp_down(b)
        self.moe_experts(b)
        self.moe_combine(b)
        self.ep_all_to_all(b)
        self.shared_expert_up(b)
        self.shared_expert_down(b)
        self.router(b)
        self.attention(b)
        self.mamba_mixer(b)
        self.norm_act(b)
        self.activation(b)
        self.tp_allreduce(b)

    def _gemm(self, b: KernelTableBuilder, op: Op, count, m, n, k, wb=None, **kw) -> None:
        wb = self.s.w_bytes if wb is None else wb
        gemm(b, self.rows, op, self.phase, count, m, n, k, wb, self.s.a_bytes, **kw)

    def qkv_proj(self, b: KernelTableBuilder) -> None:
        s = self.s
        count = self.passes * s.layers * self.gm
        self._gemm(b, Op.QKV_PROJ, count, self.tokens, (self.h_loc + 2 * self.kv_loc) * s.head_dim, s.hidden)

    def attn_out(self, b: KernelTableBuilder) -> None:
        s = self.s
        count = self.passes * s.layers * self.gm
        self._gemm(b, Op.ATTN_OUT, count, self.tokens, s.hidden, self.h_loc * s.head_dim)

    def mlp_up(self, b: KernelTableBuilder) -> None:
        s = self.s
        count = self.passes * s.dense_layers * self.gm
        self._gemm(b, Op.MLP_UP, count, self.tokens, self.mats * s.ffn / s.tp, s.hidden)

    def mlp_down(self, b: KernelTableBuilder) -> None:
        s = self.s
        count = self.passes * s.dense_layers * self.gm
        self._gemm(b, Op.MLP_DOWN, count, self.tokens, s.hidden, s.ffn / s.tp)

    def moe_experts(self, b: KernelTableBuilder) -> None:
        """Routed experts (ops ``moe_up``, ``moe_down``). Each token picks k of E experts; an expert no
        token picked is neither read nor computed. Serving stacks and trainers run all experts of a
        layer as one grouped GEMM (``gemm_group`` = experts hit). Tensor parallelism slices every expert;
        expert parallelism places whole experts on the GPUs, which then see the tokens of every engine of
        the replica, and the layer waits for the busiest rank while the others draw idle power."""
        s = self.s
        ep, ep_on = s.ep, s.ep > 1
        T_moe = self._moe_tokens()
        routed = T_moe * s.active_experts
        touched = experts_touched(s.experts, s.active_experts, T_moe)
        tok_per_expert = np.where(touched > 0, routed / np.maximum(touched, 1.0), 0.0)
        local = np.where(ep_on, busiest_rank_experts(s.experts, touched, ep), touched)
        busy = np.where(ep_on & (local > 0), touched / ep / np.maximum(local, 1e-9), 1.0)
        # A grouped 8-bit kernel that computes its whole worst-case buffer (expert_block_rows > 0) runs
        # the same row blocks on every rank: each touched expert's rows in whole blocks, the rest of the
        # buffer on one expert whose weights stay in L2, so the touched experts' weights are read once.
        block = s.expert_block_rows
        padded = padded_expert_rows(T_moe, s.active_experts, s.experts / ep, block)
        pad = padded > 0
        rows = np.where(pad, block, tok_per_expert)
        groups = np.where(pad, padded / np.maximum(block, 1.0), local)
        busy = np.where(pad, 1.0, busy)
        ffn_e = np.where(ep_on, s.expert_ffn, s.expert_ffn / s.tp)
        count = self.passes * s.moe_layers * self.gm
        up_n = self.mats * ffn_e
        kw = {
            "gemm_group": groups,
            "b_operands": local,
            "moe_grouped": True,
            "channel_scaled": s.expert_channel_scaled,
            "busy_share": busy,
            "wb": s.expert_w_bytes,
        }
        self._gemm(b, Op.MOE_UP, count, rows, up_n, s.hidden, **kw)
        self._gemm(b, Op.MOE_DOWN, count, rows, s.hidden, ffn_e, **kw)

    def _moe_tokens(self) -> np.ndarray:
        """Tokens each GPU runs through its experts: its own, or under expert parallelism every token of
        the replica's data-parallel engines."""
        return np.where(self.s.ep > 1, self.tokens * self.s.engines, self.tokens)

    def moe_combine(self, b: KernelTableBuilder) -> None:
        """The expert slots around the grouped GEMMs (``moe_combine``; vLLM's fused MoE): the activation
        over every token's k slots (reads the up and gate outputs, writes one) and their weighted sum
        into the token's hidden state, two launches per MoE layer. Under expert parallelism each rank
        runs every token of the replica's engines through its experts (vLLM's expert map: no token is
        dispatched), so it passes all k slots and writes zeros where another rank holds the expert."""
        s = self.s
        ep_on = s.ep > 1
        tokens = self._moe_tokens()
        slots = tokens * s.active_experts
        width = np.where(ep_on, s.expert_ffn, s.expert_ffn / s.tp)
        zeros = np.where(ep_on, 1.0 - 1.0 / np.maximum(s.ep, 1.0), 0.0) * (self.mats * width + s.hidden)
        per_slot = (self.mats + 1.0) * width + zeros + s.hidden
        nbytes = (slots * per_slot + tokens * s.hidden) * s.a_bytes
        count = self.passes * s.moe_layers * self.gm * 2.0 * (s.active_experts > 0)
        memory(
            b,
            self.rows,
            Op.MOE_COMBINE,
            self.phase,
            count,
            nbytes / 2.0,
            fp_flops=slots * width * SILU_MUL_FLOPS_PER_ELEMENT / 2.0,
        )

    def ep_all_to_all(self, b: KernelTableBuilder) -> None:
        """Expert parallelism over data-parallel attention engines: dispatch and combine per MoE layer,
        every GPU sending its tokens' hidden states to the ranks of their experts (``ep_all_to_all``).
        With one engine every rank already holds every token (tensor-parallel attention), and the MoE
        output is all-reduced like a dense MLP's (vLLM: no all-to-all below two data-parallel ranks)."""
        s = self.s
        count = self.passes * s.moe_layers * self.gm * 2.0 * (s.ep > 1) * (s.engines > 1)
        size = self.tokens / s.tp * s.active_experts * s.hidden * s.a_bytes
        all_to_all(b, self.rows, Op.EP_ALL_TO_ALL, self.phase, count, size, s.ep)

    def shared_expert_up(self, b: KernelTableBuilder) -> None:
        s = self.s
        count = self.passes * s.moe_layers * self.gm * (s.shared_ffn > 0)
        self._gemm(b, Op.SHARED_EXPERT_UP, count, self.tokens, self.mats * s.shared_ffn / s.tp, s.hidden)

    def shared_expert_down(self, b: KernelTableBuilder) -> None:
        s = self.s
        count = self.passes * s.moe_layers * self.gm * (s.shared_ffn > 0)
        self._gemm(b, Op.SHARED_EXPERT_DOWN, count, self.tokens, s.hidden, s.shared_ffn / s.tp)

    def router(self, b: KernelTableBuilder) -> None:
        s = self.s
        self._gemm(b, Op.ROUTER, self.passes * s.moe_layers * self.gm, self.tokens, s.experts, s.hidden)

    def attention(self, b: KernelTableBuilder) -> None:
        """Fused attention (op ``attention``) where the row runs flash attention, else eager attention:
        the two score GEMMs (``attn_scores``, ``attn_values``) and the passes between them
        (``softmax``)."""
        s, rows, q_len, seqs = self.s, self.rows, self.q_len, self.seqs
        hd, ab = s.head_dim, s.a_bytes
        causal_f = np.where(self.causal, 0.5, 1.0)
        heads_total = seqs * self.h_loc
        # keys a query attends to, over the layers (sliding-window layers: at most the window)
        kv_len = cached_tokens(s, np.broadcast_to(np.asarray(self.kv_len, dtype=np.float64), rows.shape))
        one_token = np.broadcast_to(q_len, rows.shape) <= 1
        # MLA decode runs on the latent (absorbed projections): every head scores and sums the cached
        # latent + rope key (FlashMLA); its single latent is shared by all heads like one KV head
        attn_dim = np.where(s.mla & one_token, s.kv_elems, hd)
        kv_loc = np.where(s.mla, 1.0, self.kv_loc)
        per_layer = self.passes * s.layers
        eager = s.eager_attention
        flash_rows = ~eager
        if flash_rows.any():
            sel = flash_rows
            attn_flops = 4.0 * heads_total * q_len * kv_len * attn_dim * np.where(q_len > 1, causal_f, 1.0)
            kv_bytes = seqs * kv_len * kv_elements_per_gpu(s) * ab
            qo_bytes = 2.0 * seqs * q_len * self.h_loc * hd * ab
            fa_mult = 2.5 if self.backward else 1.0
            # Decode kernels pack the query heads that share a KV head into one tile (GQA packing), so
            # each KV block is read once per KV head: tiles = sequences x KV heads x KV blocks.
            one_q = one_token
            group = self.h_loc / kv_loc
            b.add(
                rows[sel],
                Op.ATTENTION,
                self.phase,
                per_layer[sel],
                m=np.where(one_q, group, np.broadcast_to(q_len, rows.shape))[sel],
                n=np.broadcast_to(kv_len, rows.shape)[sel],
                k=attn_dim[sel],
                gemm_group=np.where(one_q, seqs * kv_loc, np.broadcast_to(heads_total, rows.shape))[sel],
                flops=(attn_flops * fa_mult)[sel],
                fp_flops=(5.0 * heads_total * q_len * kv_len * np.where(q_len > 1, causal_f, 1.0) * fa_mult)[
                    sel
                ],
                bytes=((kv_bytes + qo_bytes) * (2.0 if self.backward else 1.0))[sel],
                precision_bytes=ab[sel],
                latent_attention=(s.mla & one_token)[sel],
            )
        if eager.any():
            sel = eager
            r, cnt, gm, phase = rows[sel], per_layer[sel], self.gm, self.phase
            ql = np.broadcast_to(q_len, rows.shape)[sel]
            kl = np.broadcast_to(kv_len, rows.shape)[sel]
            ht = np.broadcast_to(heads_total, rows.shape)[sel]
            hs, abs_ = hd[sel], ab[sel]
            gemm(b, r, Op.ATTN_SCORES, phase, cnt * gm, ql, kl, hs, abs_, abs_, gemm_group=ht, weights=False)
            gemm(b, r, Op.ATTN_VALUES, phase, cnt * gm, ql, hs, kl, abs_, abs_, gemm_group=ht, weights=False)
            kernels, per_element = eager_score_traffic(s.score_kernels[sel], s.softmax_fp32[sel], abs_)
            elements = ht * ql * kl
            memory(
                b,
                r,
                Op.SOFTMAX,
                phase,
                cnt * kernels * gm,
                per_element * elements / kernels,
                fp_flops=FP_FLOPS_PER_SOFTMAX_ELEMENT * elements / kernels,
            )

    def _mamba(self):
        """(selection, its rows' parameters, and per-row arrays of the pass restricted to it) for the
        rows with Mamba-2 layers; None when there are none (every other model emits nothing here)."""
        sel = self.s.mamba_layers > 0
        if not sel.any():
            return None
        shape = self.rows.shape
        pick = lambda x: np.broadcast_to(np.asarray(x, dtype=np.float64), shape)[sel]  # noqa: E731
        s = self.s.take(np.nonzero(sel)[0])
        count = pick(self.passes) * s.mamba_layers * self.gm
        return sel, s, count, pick(self.tokens), pick(self.q_len), pick(self.seqs)

    def mamba_mixer(self, b: KernelTableBuilder) -> None:
        """Mamba-2 mixer layers (hybrids such as Nemotron-H), split over tensor parallelism by head:

        - ``mamba_in_proj``: z and x (the inner width each), B and C (groups x state each) and a step
          size per head; ``mamba_out_proj`` back to the hidden width;
        - ``mamba_scan``: the chunked state-space scan of a multi-token pass (SSD, Triton kernels on
          the tensor cores): within a chunk of ``MAMBA_CHUNK`` tokens each output sums its causal half
          of the chunk's inputs, and every token adds its chunk's incoming state (N per channel) and
          feeds the outgoing one: per token and inner channel 2 (Q/2 + 2N) FLOPs, a GEMM of the tokens
          against that depth (a decode step has no chunks);
        - ``mamba_state``: the causal convolution over x, B and C (read and write, plus each
          sequence's last k - 1 inputs), the recurrent state (fp32, inner width x N per sequence: a
          decode step reads and writes it whole at ~5 FLOPs per element; a prefill writes one per
          chunk, reads it back to pass it on and keeps the last) and the gated RMSNorm (reads y and z,
          writes its output)."""
        got = self._mamba()
        if got is None:
            return
        sel, s, count, T, q, seqs = got
        rows, ph, ab = self.rows[sel], self.phase, s.a_bytes
        inner = s.mamba_inner / s.tp
        width = mamba_in_width(s.mamba_inner, s.mamba_groups, s.ssm_state, s.mamba_heads) / s.tp
        gemm(b, rows, Op.MAMBA_IN_PROJ, ph, count, T, width, s.hidden, s.w_bytes, ab)
        gemm(b, rows, Op.MAMBA_OUT_PROJ, ph, count, T, s.hidden, inner, s.w_bytes, ab)
        multi = q > 1
        depth = 0.5 * np.minimum(MAMBA_CHUNK, q) + 2.0 * s.ssm_state
        gemm(b, rows, Op.MAMBA_SCAN, ph, count * multi, T, inner, depth, ab, ab, weights=False)
        conv_ch = mamba_conv_channels(s)
        state, conv_state = mamba_state_bytes(s)  # per sequence
        state_passes = np.where(multi, 2.0 * np.ceil(q / MAMBA_CHUNK) + 1.0, 2.0)
        nbytes = (
            2.0 * T * conv_ch * ab + seqs * (state_passes * state + 2.0 * conv_state) + 3.0 * T * inner * ab
        )
        fp = T * (2.0 * s.conv_kernel * conv_ch + 6.0 * inner) + np.where(
            multi, 0.0, 5.0 * seqs * state / SSM_STATE_BYTES
        )
        k = MAMBA_STATE_LAUNCHES
        memory(b, rows, Op.MAMBA_STATE, ph, count * k, nbytes / k, fp_flops=fp / k, recurrent_state=True)

    def norm_act(self, b: KernelTableBuilder) -> None:
        """Norms, residual adds, rotary embeddings and the MLP activation: fused kernels in a serving
        stack, many more small ones under eager dispatch.

        Eager Llama-style code runs them unfused (HF RMSNorm, ``apply_rotary_pos_emb``, ``act(gate) *
        up``), each kernel reading and writing its whole tensor (:func:`eager_elementwise_bytes`); the
        ``norm_act`` kernels of eager rows are chained (each reads what the one before wrote), so they
        carry their footprint for the L2 residency rule."""
        s, T = self.s, self.tokens
        act = T * s.hidden * self.stream_bytes
        eager = s.eager_dispatch
        rms = np.where(eager, s.rms_norm, 0.0)
        rot = np.where(eager, s.rotary, 0.0)
        gated_mul = np.where(eager, s.gated, 0.0)
        # autocast: the GEMM inputs off the fp32 stream are cast to 16 bit
        casts = np.where(self.amp, AMP_INPUT_CASTS_PER_LAYER, 0.0)
        launches = (
            ELEMENTWISE_LAUNCHES_PER_LAYER + np.where(eager, EAGER_EXTRA_LAUNCHES_PER_LAYER, 0.0) + casts
        )
        count = self.passes * s.block_pairs * self.gm
        base_launches = launches - gated_mul  # the gate x up multiply is one of them
        T_b = np.broadcast_to(T, self.rows.shape)
        mlp_elems = T_b * s.ffn / s.tp  # one MLP intermediate
        hidden_elems = T_b * s.hidden
        norm_b, rot_b, mul_b = eager_elementwise_bytes(s.a_bytes)
        layer_bytes = (
            ELEMENTWISE_PASSES_PER_LAYER * act
            + self.mats * mlp_elems * s.a_bytes
            + casts * AMP_CAST_BYTES_PER_ELEMENT * hidden_elems
        )
        memory(
            b,
            self.rows,
            Op.NORM_ACT,
            self.phase,
            count * base_launches,
            layer_bytes / base_launches,
            fp_flops=(10.0 + casts) * hidden_elems / base_launches,
            l2_footprint=np.where(eager, 3.0 * act, 0.0),  # a residual add: two inputs, one output
        )
        qk_elems = T_b * (self.h_loc + self.kv_loc) * s.head_dim
        q_elems = T_b * self.h_loc * s.head_dim
        # (launches per layer, bytes per layer, footprint of one launch: the mean over the norm's six
        # tensor-sized kernels and the rotary's five per tensor)
        extra = (
            (
                EAGER_RMSNORM_EXTRA_LAUNCHES_PER_LAYER * rms,
                2.0 * norm_b * hidden_elems,
                (norm_b + 2.0 * s.a_bytes) / 6.0 * hidden_elems,
            ),
            (EAGER_ROTARY_EXTRA_LAUNCHES_PER_LAYER * rot, rot_b * qk_elems, 2.0 * s.a_bytes * q_elems),
            (gated_mul, mul_b * mlp_elems, mul_b * mlp_elems),
        )
        for per_layer, layer_bytes, footprint in extra:
            sel = per_layer > 0
            if sel.any():
                per_launch = layer_bytes / np.maximum(per_layer, 1.0)
                memory(
                    b,
                    self.rows[sel],
                    Op.NORM_ACT,
                    self.phase,
                    (count * per_layer)[sel],
                    per_launch[sel],
                    fp_flops=(per_launch / (2.0 * s.a_bytes))[sel],
                    l2_footprint=footprint[sel],
                )

    def activation(self, b: KernelTableBuilder) -> None:
        """An unfused eager activation (GPT-2's gelu_new: pow, 3 multiplies, 2 adds, tanh, scale) runs
        its extra kernels over the MLP intermediate, each reading and writing it."""
        s = self.s
        extra_act = np.where(s.eager_dispatch, s.act_kernels - 1.0, 0.0)
        if (extra_act > 0).any():
            sel = extra_act > 0
            mlp_elems = (np.broadcast_to(self.tokens, self.rows.shape) * s.ffn / s.tp)[sel]
            elem_bytes = self.stream_bytes[sel]
            memory(
                b,
                self.rows[sel],
                Op.ACTIVATION,
                self.phase,
                (self.passes * s.dense_layers * extra_act * self.gm)[sel],
                2.0 * mlp_elems * elem_bytes,
                fp_flops=mlp_elems,
                l2_footprint=2.0 * mlp_elems * elem_bytes,
            )

    def tp_allreduce(self, b: KernelTableBuilder) -> None:
        """Tensor-parallel all-reduces of the hidden state: 2 per layer forward, 2 backward; expert-
        parallel MoE layers over data-parallel engines combine their outputs with the all-to-all
        instead of the second."""
        s = self.s
        act = self.tokens * s.hidden * s.a_bytes
        count = self.passes * (
            2.0 * s.block_pairs - np.where((s.ep > 1) & (s.engines > 1), s.moe_layers, 0.0)
        )
        allreduce(b, self.rows, Op.TP_ALLREDUCE, self.phase, count, act, s.tp)


def lm_head(
    b: KernelTableBuilder, p: RowParams, rows, phase: Phase, passes, tokens, backward=False, projected=None
) -> None:
    """The vocabulary projection (``lm_head``) and the fp32 passes over its logits (``logits``:
    sampling in inference, cross-entropy in training). A serving engine gathers the logits of every
    tensor-parallel rank and samples on each with top-p / top-k over the whole vocabulary
    (``SAMPLING_BYTES_PER_LOGIT``); eager code and training make one pass over their slice.
    ``projected``: the tokens the projection runs over when more than those sampled (``tokens``; none
    where a scoring pass samples nothing)."""
    tp, wb, ab = p.tp[rows], p.w_bytes[rows], p.a_bytes[rows]
    vocab, d = p.vocab[rows], p.hidden[rows]
    gm = 2.0 if backward else 1.0
    m = tokens if projected is None else projected
    gemm(b, rows, Op.LM_HEAD, phase, passes * gm * (vocab > 0), m, vocab / tp, d, wb, ab)
    engine = (p.eager_dispatch[rows] == 0) & ~p.training[rows]
    logits = tokens * np.where(engine, vocab, vocab / tp)
    memory(
        b,
        rows,
        Op.LOGITS,
        phase,
        passes * (vocab > 0) * (tokens > 0),
        logits * np.where(engine, SAMPLING_BYTES_PER_LOGIT, LOGIT_PASS_BYTES),
        fp_flops=logits * np.where(engine, SAMPLING_FP_FLOPS_PER_LOGIT, 5.0),
    )


def add_inference(b: KernelTableBuilder, p: RowParams, rows: np.ndarray, concurrency: np.ndarray) -> None:
    """Inference kernels for transformer rows; ``concurrency`` is the number of requests served at
    once after memory limits."""
    if rows.size == 0:
        return
    req, inp, out = p.requests[rows], p.input_tokens[rows], p.output_tokens[rows]
    decoder = p.decoder[rows]
    # the prompts in passes of at most ``concurrency``, split evenly (the last pass is not padded)
    prefill_passes = np.ceil(req / concurrency)
    # one GPU's work: its data-parallel attention engine serves its share of the sequences
    B = concurrency / p.engines[rows]
    Bp = req / prefill_passes / p.engines[rows]
    T = Bp * inp
    LayerPass(p, rows, Phase.PREFILL, prefill_passes, T, inp, inp, decoder, Bp).emit(b)
    emb = T * p.hidden[rows] * p.a_bytes[rows]
    memory(b, rows, Op.EMBEDDING, Phase.PREFILL, prefill_passes, 2.0 * emb)
    gen = out > 0
    # the first token is sampled from the last prompt position; a scoring pass (prompt_logits) projects
    # every prompt token onto the vocabulary, and samples nothing unless the row generates
    scored = p.prompt_logits[rows] > 0
    head = gen | scored
    if head.any():
        r = rows[head]
        sampled = np.where(gen[head], Bp[head], 0.0)
        projected = np.where(scored[head], T[head], Bp[head])
        lm_head(b, p, r, Phase.PREFILL, prefill_passes[head], sampled, projected=projected)
    if gen.any():
        r = rows[gen]
        Bg, reqg, outg, inpg = B[gen], req[gen], out[gen], inp[gen]
        steps = reqg * outg / concurrency[gen]
        ctx = inpg + outg / 2.0
        one = np.ones_like(Bg)
        LayerPass(p, r, Phase.DECODE, steps, Bg, one, ctx, np.ones_like(Bg, dtype=bool), Bg).emit(b)
        lm_head(b, p, r, Phase.DECODE, steps, Bg)
        memory(b, r, Op.EMBEDDING, Phase.DECODE, steps, 2.0 * Bg * p.hidden[r] * p.a_bytes[r])


def autocast(training: np.ndarray, a_bytes: np.ndarray) -> np.ndarray:
    """Rows trained in 16 bit under autocast (fp32 weights and gradients, 16-bit GEMMs)."""
    return training & (a_bytes < FP32_BYTES)


def amp_weight_casts(b: KernelTableBuilder, p: RowParams, rows: np.ndarray, steps, n_mb) -> None:
    """Autocast's per-pass weight casts and the fp32 gradient copies and accumulations, one kernel per
    weight matrix each (``AMP_*`` constants; one table entry, in the backward phase). The casts of the
    GEMM inputs are ``norm_act`` kernels (:meth:`LayerPass.norm_act`)."""
    sel = autocast(p.training[rows], p.a_bytes[rows])
    if not sel.any():
        return
    r, steps, n_mb = rows[sel], steps[sel], n_mb[sel]
    params = p.params[r] / p.tp[r]
    # weight matrices: 4 attention projections, the MLP's up (and gate) and down, per block pair
    matrices = np.maximum(p.block_pairs[r] * (6.0 + p.gated[r]), 1.0)
    grad_bytes = AMP_CAST_BYTES_PER_ELEMENT + AMP_GRAD_ACCUMULATE_BYTES * (n_mb - 1.0)
    per_param = AMP_CAST_BYTES_PER_ELEMENT * n_mb + grad_bytes  # a step: every pass's casts, the gradients
    launches = 2.0 * n_mb * matrices
    memory(b, r, Op.AMP_CAST, Phase.BACKWARD, steps * launches, per_param * params / launches)


def microbatch(p: RowParams, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sequences per micro-batch, micro-batches per step) per data-parallel replica: the replica's
    sequences split evenly into the fewest micro-batches of at most TRAINING_TOKENS_PER_MICROBATCH
    tokens (gradient accumulation does not pad the last micro-batch)."""
    seqs_per_replica = np.maximum(p.global_batch[rows] / p.dp[rows], 1.0)
    mb_max = np.clip(np.floor(TRAINING_TOKENS_PER_MICROBATCH / p.seq[rows]), 1.0, seqs_per_replica)
    limit = p.mb_limit[rows]
    mb_max = np.where(limit > 0, np.minimum(mb_max, limit), mb_max)
    n_mb = np.ceil(seqs_per_replica / mb_max)
    return seqs_per_replica / n_mb, n_mb


def add_training(b: KernelTableBuilder, p: RowParams, rows: np.ndarray) -> None:
    """Training kernels for transformer rows: forward, backward (and recomputation) passes per
    micro-batch, the LM head where the model has one, and the optimizer step."""
    if rows.size == 0:
        return
    seq, steps = p.seq[rows], p.steps[rows]
    mb, n_mb = microbatch(p, rows)
    passes = steps * n_mb
    T = mb * seq
    causal = p.decoder[rows]
    LayerPass(p, rows, Phase.FORWARD, passes, T, seq, seq, causal, mb).emit(b)
    LayerPass(p, rows, Phase.BACKWARD, passes, T, seq, seq, causal, mb, backward=True).emit(b)
    recompute = p.recompute[rows]
    if recompute.any():
        sel = recompute
        LayerPass(
            p, rows[sel], Phase.BACKWARD, passes[sel], T[sel], seq[sel], seq[sel], causal[sel], mb[sel]
        ).emit(b)
    lm_head(b, p, rows, Phase.FORWARD, passes * p.decoder[rows], T)
    lm_head(b, p, rows, Phase.BACKWARD, passes * p.decoder[rows], T, backward=True)
    amp_weight_casts(b, p, rows, steps, n_mb)
    optimizer_step(b, rows, steps, p.params[rows] / p.tp[rows], p.dp[rows])
