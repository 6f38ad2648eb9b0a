"""Memory feasibility: does the workload fit in gpu_count x GPU memory, and at what concurrency.

Inference: weights (per tensor-parallel shard) + KV cache of the concurrent requests (paged: each
holds its prompt and, on average, half its output) must fit in the usable memory; as serving
engines do, concurrency drops to what fits, and the workload is infeasible only when not even one
request at full context fits. Training: weights, gradients and
AdamW states (16 B/param, sharded by tensor parallelism) plus activations of one micro-batch
(~34 B per token per hidden unit per layer with flash attention; 2 with recomputation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from energaizer.catalog.schema import ModelArchitecture
from energaizer.hardware import GpuTable
from energaizer.kernels.params import (
    TRAINING_TOKENS_PER_MICROBATCH,
    RowParams,
    cached_tokens,
    kv_elements_per_gpu,
    mamba_state_bytes_per_gpu,
)
from energaizer.kernels.transformer import microbatch

USABLE_FRACTION = 0.92  # of nominal memory, after the CUDA context and allocator reserve
RUNTIME_RESERVE_BYTES = 1.0e9  # activations / workspace of the serving engine
TRAINING_STATE_BYTES_PER_PARAM = 16.0


MAX_TRAINING_TP = 8  # tensor parallelism stays inside one NVLink node
MICROBATCH_HALVINGS = 12  # gradient accumulation down to one sequence per micro-batch


def _training_need(p: RowParams, params: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Bytes per GPU of the training rows at their current layout (p.tp, p.dp, p.recompute, p.mb_limit)."""
    mb, _ = microbatch(p, rows)
    act_per = np.where(p.recompute[rows], 2.0, 34.0)
    acts = act_per * mb * p.seq[rows] * p.hidden[rows] * p.block_pairs[rows] / p.tp[rows]
    state = TRAINING_STATE_BYTES_PER_PARAM * params[rows] / p.tp[rows]
    return state + acts + RUNTIME_RESERVE_BYTES


def choose_training_layout(
    p: RowParams, archs: list[ModelArchitecture], hw: GpuTable, gi: np.ndarray, fixed_tp: np.ndarray
) -> None:
    """Per training row and GPU type, the layout a framework would pick (sets p.tp, p.dp, p.recompute,
    p.mb_limit): the smallest tensor parallelism (a power of two that divides the GPUs and the
    attention heads, at most 8), then the largest micro-batch (gradient accumulation), recomputation
    only when nothing else fits. ``fixed_tp`` > 0 and a requested recomputation are kept. A row stays
    at its first layout when none fits (it is then infeasible)."""
    rows = np.nonzero(p.training & ~p.is_cnn)[0]
    if rows.size == 0:
        return
    cap = np.array([hw.specs[g].memory_gb for g in gi[rows]]) * 1e9 * USABLE_FRACTION
    params = p.params
    chosen = np.zeros(rows.size, dtype=bool)
    first = {k: getattr(p, k)[rows].copy() for k in ("tp", "dp", "recompute", "mb_limit")}
    asked_rc = p.recompute[rows].copy()
    heads = np.maximum(p.heads[rows], 1.0)
    seqs_max = np.maximum(np.floor(TRAINING_TOKENS_PER_MICROBATCH / p.seq[rows]), 1.0)
    for tp in (1.0, 2.0, 4.0, 8.0):
        ok_tp = np.where(
            fixed_tp[rows] > 0,
            fixed_tp[rows] == tp,
            (tp <= np.minimum(p.gpu_count[rows], MAX_TRAINING_TP))
            & (np.mod(p.gpu_count[rows], tp) == 0)
            & (np.mod(heads, tp) == 0),
        )
        for rc in (False, True):
            ok = ok_tp & (rc | ~asked_rc)
            for halving in range(MICROBATCH_HALVINGS + 1):
                todo = ok & ~chosen
                if not todo.any():
                    break
                r = rows[todo]
                p.tp[r], p.dp[r], p.recompute[r] = tp, p.gpu_count[r] // tp, rc
                p.mb_limit[r] = np.maximum(np.floor(seqs_max[todo] / 2**halving), 1.0)
                fits = _training_need(p, params, r) <= cap[todo]
                chosen[np.nonzero(todo)[0][fits]] = True
                if halving and (p.mb_limit[r] <= 1.0).all():
                    break
    rest = rows[~chosen]
    for k, v in first.items():
        getattr(p, k)[rest] = v[~chosen]


@dataclass
class MemoryPlan:
    feasible: np.ndarray
    reason: list[str]
    concurrency: np.ndarray  # requests served at once after the memory limit (inference)
    required_gb: np.ndarray  # per GPU at the effective concurrency


def plan_memory(p: RowParams, archs: list[ModelArchitecture], hw: GpuTable, gi: np.ndarray) -> MemoryPlan:
    from energaizer.kernels.cnn import cnn_params

    n = p.tp.shape[0]
    cap = np.array([hw.specs[g].memory_gb for g in gi]) * 1e9 * USABLE_FRACTION
    tp = p.tp
    params = p.params.copy()
    for i, a in enumerate(archs):
        if a.arch_type == "cnn":
            params[i] = cnn_params(a.cnn)
    # expert parallelism places whole experts over its GPUs; the rest is split by (engine) TP
    # (routed experts in their own element size: a checkpoint may ship them narrower, gpt-oss in MXFP4)
    experts_per_gpu = p.expert_params / np.where(p.ep > 1, p.ep, tp)
    weights = (params - p.expert_params) / tp * p.w_bytes + experts_per_gpu * p.expert_w_bytes
    # bytes per cached token per GPU (MLA latents replicated over TP, K/V heads split), over the layers
    kv_per_token = p.layers * kv_elements_per_gpu(p) * p.a_bytes
    # a hybrid's Mamba-2 layers hold a fixed-size state per sequence instead
    state_per_seq = mamba_state_bytes_per_gpu(p)
    kv_per_seq = cached_tokens(p, p.input_tokens + p.output_tokens) * kv_per_token + state_per_seq
    # Paged KV cache: a running sequence holds its prompt and what it has generated so far, on
    # average half its output under continuous batching; one request must fit at full length.
    # Sliding-window layers hold at most the window.
    kv_mean_seq = cached_tokens(p, p.input_tokens + 0.5 * p.output_tokens) * kv_per_token + state_per_seq
    # a scoring pass (prompt_logits) holds its prompt's logits, each rank its slice of the vocabulary
    logits_per_seq = np.where(p.prompt_logits, p.input_tokens * p.vocab / tp * p.a_bytes, 0.0)
    kv_per_seq = kv_per_seq + logits_per_seq
    kv_mean_seq = kv_mean_seq + logits_per_seq
    inference = ~p.training
    free = cap - weights - RUNTIME_RESERVE_BYTES
    with np.errstate(divide="ignore", invalid="ignore"):
        fits = np.where(kv_mean_seq > 0, np.floor(free / kv_mean_seq), np.inf)
    fits = np.where(free >= kv_per_seq, np.maximum(fits, 1.0), 0.0)
    # each data-parallel attention engine holds the KV of its own sequences
    concurrency = np.where(inference, np.clip(fits * p.engines, 0.0, p.concurrency), p.concurrency)
    concurrency = np.where(p.is_cnn, p.concurrency, concurrency)
    need = (
        weights
        + RUNTIME_RESERVE_BYTES
        + np.where(
            inference, np.maximum(kv_per_seq, np.maximum(concurrency / p.engines, 1.0) * kv_mean_seq), 0.0
        )
    )

    train = np.nonzero(p.training)[0]
    if train.size:
        need[train] = _training_need(p, params, train)
    feasible = np.where(inference & ~p.is_cnn, concurrency >= 1.0, need <= cap)
    reason = [""] * n
    for i in np.nonzero(~feasible)[0].tolist():
        g = hw.specs[gi[i]]
        held = "KV cache and prompt logits" if p.prompt_logits[i] else "KV cache"
        what = (
            f"weights + {held} of one request"
            if inference[i]
            else "weights, gradients, optimizer state and activations"
        )
        reason[i] = (
            f"does not fit: {what} need {need[i] / 1e9:.1f} GB per GPU, {g.id} has "
            f"{cap[i] / 1e9:.1f} GB usable x {int(p.gpu_count[i])} GPU(s); use more GPUs or a larger GPU"
        )
    return MemoryPlan(
        feasible=feasible, reason=reason, concurrency=np.maximum(concurrency, 1.0), required_gb=need / 1e9
    )
