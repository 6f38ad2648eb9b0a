"""Per-row numeric parameters (architecture, sizes, parallelism) as NumPy columns.

This is the only place that loops over workloads in Python; everything downstream is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from energaizer.catalog.schema import GPUSpec, ModelArchitecture
from energaizer.workload import Workload

PRECISION_BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# Bytes per element of activations / KV cache / gradients: 16-bit unless the model runs in fp32.
ACTIVATION_BYTES = {"fp32": 4.0, "tf32": 4.0}
TRAINING_TOKENS_PER_MICROBATCH = 16384.0


@dataclass
class RowParams:
    """One entry per (workload, GPU) row."""

    is_cnn: np.ndarray
    decoder: np.ndarray
    training: np.ndarray
    eager_attention: np.ndarray
    eager_dispatch: np.ndarray  # 1: framework dispatch per kernel; 0: serving engine with CUDA graphs
    legacy_engine: np.ndarray  # 1: serving engine with heavy per-sequence host work per step
    layers: np.ndarray
    hidden: np.ndarray
    heads: np.ndarray
    kv_heads: np.ndarray
    head_dim: np.ndarray
    ffn: np.ndarray
    dense_layers: np.ndarray
    moe_layers: np.ndarray
    gated: np.ndarray
    act_kernels: np.ndarray  # eager elementwise kernels of the MLP activation
    rotary: np.ndarray  # 1: rotary position embeddings on q and k
    rms_norm: np.ndarray  # 1: RMSNorm (several eager kernels) instead of a fused LayerNorm
    score_kernels: np.ndarray  # eager attention: elementwise kernels on the scores before the softmax
    softmax_fp32: np.ndarray  # 1: eager softmax writes fp32 probabilities, cast back in another kernel
    host_syncs: np.ndarray  # 1: the eager implementation synchronises host and GPU in every layer
    simt_convs: np.ndarray  # 1: convolutions run on CUDA cores in fp32 (no TF32 tensor cores): Winograd
    vocab: np.ndarray
    tied: np.ndarray
    experts: np.ndarray
    active_experts: np.ndarray
    expert_ffn: np.ndarray
    shared_ffn: np.ndarray
    params: np.ndarray  # total parameters
    active_params: np.ndarray
    w_bytes: np.ndarray  # weight element size
    a_bytes: np.ndarray  # activation / KV element size
    gpu_count: np.ndarray
    tp: np.ndarray
    dp: np.ndarray
    requests: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    batch: np.ndarray
    steps: np.ndarray
    global_batch: np.ndarray
    seq: np.ndarray
    recompute: np.ndarray

    def take(self, rows: np.ndarray) -> RowParams:
        """The parameters of ``rows`` only (every column indexed by ``rows``)."""
        return RowParams(**{name: getattr(self, name)[rows] for name in _FIELDS})


_FIELDS = tuple(f.name for f in fields(RowParams))


def transformer_params(a: ModelArchitecture) -> tuple[float, float]:
    """(total, active) parameter counts of a transformer, from its shapes."""
    d, h, kv, hd = a.hidden or 0, a.heads or 0, a.kv_heads_, a.head_dim_
    mats = 3 if a.gated_mlp else 2
    attn = d * (h + 2 * kv) * hd + h * hd * d
    layers = a.layers or 0
    moe_layers = round(layers * a.moe_layer_fraction) if a.is_moe else 0
    dense_layers = layers - moe_layers
    dense_mlp = mats * d * (a.ffn or 0)
    shared = mats * d * (a.moe_shared_ffn or 0)
    expert = mats * d * (a.moe_expert_ffn or a.ffn or 0)
    emb = (a.vocab or 0) * d * (1 if a.tied_embeddings or a.arch_type == "encoder" else 2)
    total = (
        layers * attn + dense_layers * dense_mlp + moe_layers * (shared + (a.moe_experts or 0) * expert) + emb
    )
    active = (
        layers * attn
        + dense_layers * dense_mlp
        + moe_layers * (shared + (a.moe_active_experts or 0) * expert)
    )
    return float(total), float(active + emb)


def default_tensor_parallel(w: Workload, a: ModelArchitecture, gpu: GPUSpec) -> int:
    """Inference: all GPUs of the replica. Training: smallest power of two whose share of weights and
    optimizer state (16 B/param) fits in 60 % of one GPU, capped at 8 and at gpu_count."""
    if w.tensor_parallel:
        return w.tensor_parallel
    if w.task == "inference" or a.arch_type == "cnn":
        return w.gpu_count if a.arch_type != "cnn" else 1
    total, _ = transformer_params(a)
    tp = 1
    while (
        tp < min(8, w.gpu_count)
        and total * 16.0 / tp > 0.6 * gpu.memory_gb * 1e9
        and w.gpu_count % (tp * 2) == 0
    ):
        tp *= 2
    return tp


def execution_style(w: Workload, a: ModelArchitecture) -> tuple[str, str]:
    """(attention, dispatch) after resolving ``auto``.

    Prefill-only forward passes (encoders, embeddings, ``output_tokens: 0``) are modelled as plain
    framework code: eager attention, one host dispatch per kernel (the EnergAIzer measurement
    setting). Batched generation is a serving engine: fused attention, CUDA-graph decode steps with a
    host cost per step. Batch-1 generation is framework ``generate()`` (eager dispatch, fused
    attention); training uses fused attention and eager dispatch.
    """
    generates = w.inference is not None and w.inference.output_tokens > 0 and a.arch_type == "decoder"
    attention = w.attention
    if attention == "auto":
        attention = "eager" if w.inference is not None and not generates else "flash"
    dispatch = w.execution
    if dispatch == "auto":
        batched = w.inference is not None and min(w.inference.batch_size, w.inference.requests) > 1
        dispatch = "graphs" if generates and batched else "eager"
    return attention, dispatch


def build_row_params(
    workloads: list[Workload], gpus: list[GPUSpec], archs: list[ModelArchitecture]
) -> RowParams:
    n = len(workloads)
    cols: dict[str, list[float]] = {f.name: [0.0] * n for f in fields(RowParams)}
    for i, (w, gpu, a) in enumerate(zip(workloads, gpus, archs, strict=True)):
        c = cols
        is_cnn = a.arch_type == "cnn"
        c["is_cnn"][i] = float(is_cnn)
        c["simt_convs"][i] = float(
            is_cnn and w.precision in ("fp32", "tf32") and "tf32" not in gpu.peak_tflops
        )
        c["decoder"][i] = float(a.arch_type == "decoder")
        c["training"][i] = float(w.task == "training")
        attention, dispatch = execution_style(w, a)
        c["eager_attention"][i] = float(attention == "eager")
        c["eager_dispatch"][i] = float(dispatch == "eager")
        c["legacy_engine"][i] = float(dispatch == "legacy-engine")
        c["w_bytes"][i] = PRECISION_BYTES[w.precision] if w.task == "inference" else 2.0
        c["a_bytes"][i] = ACTIVATION_BYTES.get(w.precision, 2.0)
        if w.task == "training" and w.precision in ("fp32", "tf32"):
            c["w_bytes"][i] = 4.0
        c["gpu_count"][i] = w.gpu_count
        tp = default_tensor_parallel(w, a, gpu)
        c["tp"][i] = tp
        c["dp"][i] = w.gpu_count // tp
        if not is_cnn:
            layers = a.layers or 0
            moe_layers = round(layers * a.moe_layer_fraction) if a.is_moe else 0
            c["layers"][i] = layers
            c["moe_layers"][i] = moe_layers
            c["dense_layers"][i] = layers - moe_layers
            c["hidden"][i] = a.hidden or 0
            c["heads"][i] = a.heads or 0
            c["kv_heads"][i] = a.kv_heads_
            c["head_dim"][i] = a.head_dim_
            c["ffn"][i] = a.ffn or 0
            c["gated"][i] = float(a.gated_mlp)
            c["act_kernels"][i] = float(a.eager_activation_kernels)
            c["rotary"][i] = float(a.gated_mlp if a.rotary_embeddings is None else a.rotary_embeddings)
            c["rms_norm"][i] = float(a.gated_mlp if a.rms_norm is None else a.rms_norm)
            c["score_kernels"][i] = float(a.eager_score_kernels)
            c["softmax_fp32"][i] = float(a.eager_softmax_fp32)
            c["host_syncs"][i] = float(a.eager_host_syncs)
            c["vocab"][i] = a.vocab or 0
            c["tied"][i] = float(a.tied_embeddings)
            c["experts"][i] = a.moe_experts or 0
            c["active_experts"][i] = a.moe_active_experts or 0
            c["expert_ffn"][i] = a.moe_expert_ffn or a.ffn or 0
            c["shared_ffn"][i] = a.moe_shared_ffn or 0
            c["params"][i], c["active_params"][i] = transformer_params(a)
        if w.inference is not None:
            inf = w.inference
            c["requests"][i] = inf.requests
            c["input_tokens"][i] = a.image_tokens or inf.input_tokens
            c["output_tokens"][i] = inf.output_tokens if a.arch_type == "decoder" else 0
            c["batch"][i] = min(inf.batch_size, inf.requests)
        if w.training is not None:
            tr = w.training
            seq = float(a.image_tokens or tr.sequence_length) if not is_cnn else 1.0
            c["global_batch"][i] = tr.global_batch_size
            c["seq"][i] = seq
            c["steps"][i] = tr.total_steps
            c["recompute"][i] = float(tr.activation_recomputation)
    return RowParams(**{k: np.asarray(v, dtype=np.float64) for k, v in cols.items()})
