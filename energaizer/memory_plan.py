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
from energaizer.kernels.params import RowParams, cached_tokens, kv_elements_per_gpu
from energaizer.kernels.transformer import microbatch

USABLE_FRACTION = 0.92  # of nominal memory, after the CUDA context and allocator reserve
RUNTIME_RESERVE_BYTES = 1.0e9  # activations / workspace of the serving engine
TRAINING_STATE_BYTES_PER_PARAM = 16.0


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
    experts = np.where(p.ep > 1, p.expert_params, 0.0)
    weights = ((params - experts) / tp + experts / np.maximum(p.ep, 1.0)) * p.w_bytes
    # bytes per cached token per GPU (MLA latents replicated over TP, K/V heads split), over the layers
    kv_per_token = p.layers * kv_elements_per_gpu(p) * p.a_bytes
    kv_per_seq = cached_tokens(p, p.input_tokens + p.output_tokens) * kv_per_token
    # Paged KV cache: a running sequence holds its prompt and what it has generated so far, on
    # average half its output under continuous batching; one request must fit at full length.
    # Sliding-window layers hold at most the window.
    kv_mean_seq = cached_tokens(p, p.input_tokens + 0.5 * p.output_tokens) * kv_per_token
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
        mb, _ = microbatch(p, train)
        act_per = np.where(p.recompute[train], 2.0, 34.0)
        tokens = mb * p.seq[train]
        acts = act_per * tokens * p.hidden[train] * p.layers[train] / tp[train]
        state = TRAINING_STATE_BYTES_PER_PARAM * params[train] / tp[train]
        need[train] = state + acts + RUNTIME_RESERVE_BYTES
    feasible = np.where(inference & ~p.is_cnn, concurrency >= 1.0, need <= cap)
    reason = [""] * n
    for i in np.nonzero(~feasible)[0].tolist():
        g = hw.specs[gi[i]]
        what = (
            "weights + KV cache of one request"
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
