"""Per-row parameters (architecture, sizes, parallelism) as NumPy columns: :class:`RowParams`.

``build_row_params`` is the only place that loops over workloads in Python; everything downstream is
vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from energaizer.catalog.schema import GPUSpec, ModelArchitecture
from energaizer.hardware import GROUPED_FP8_BLOCK_ROWS
from energaizer.workload import Workload

PRECISION_BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# Bytes per element of activations / KV cache / gradients: 16-bit unless the model runs in fp32.
ACTIVATION_BYTES = {"fp32": 4.0, "tf32": 4.0}
TRAINING_TOKENS_PER_MICROBATCH = 16384.0


@dataclass
class RowParams:
    """The numbers every stage needs about each (workload, GPU) row: one NumPy column per parameter.

    Flags are bool arrays; counts and sizes are float64. ``take(rows)`` selects rows.
    """

    # what runs
    is_cnn: np.ndarray  # bool
    decoder: np.ndarray  # bool: a decoder (causal attention, generates tokens)
    training: np.ndarray  # bool
    eager_attention: np.ndarray  # bool: separate score GEMMs + softmax instead of fused attention
    eager_dispatch: np.ndarray  # bool: framework dispatch per kernel (else a serving engine with CUDA graphs)
    legacy_engine: np.ndarray  # bool: serving engine with heavy per-sequence host work per step
    # transformer architecture
    layers: np.ndarray
    hidden: np.ndarray
    heads: np.ndarray
    kv_heads: np.ndarray
    head_dim: np.ndarray
    kv_elems: np.ndarray  # elements one layer caches per token (K and V heads, or MLA's latent + rope key)
    mla: np.ndarray  # bool: multi-head latent attention (the latent is replicated on every TP rank)
    window: np.ndarray  # sliding-window length (0: none)
    window_frac: np.ndarray  # share of layers that are windowed
    ffn: np.ndarray
    dense_layers: np.ndarray
    moe_layers: np.ndarray
    # hybrid models (``layers`` above counts the layers with attention)
    block_pairs: np.ndarray  # blocks / 2: transformer-layer equivalents of norms, residuals, all-reduces
    mamba_layers: np.ndarray  # Mamba-2 mixer layers
    mamba_inner: np.ndarray  # Mamba-2 heads x head width
    mamba_heads: np.ndarray
    ssm_state: np.ndarray  # Mamba-2 state per head channel (N)
    mamba_groups: np.ndarray  # Mamba-2 B/C groups
    conv_kernel: np.ndarray  # Mamba-2 causal convolution width
    gated: np.ndarray  # bool: gated MLP (up and gate projections)
    act_kernels: np.ndarray  # eager elementwise kernels of the MLP activation
    rotary: np.ndarray  # bool: rotary position embeddings on q and k
    rms_norm: np.ndarray  # bool: RMSNorm (several eager kernels) instead of a fused LayerNorm
    score_kernels: np.ndarray  # eager attention: elementwise kernels on the scores before the softmax
    softmax_fp32: np.ndarray  # bool: eager softmax writes fp32 probabilities, cast back in another kernel
    host_syncs: np.ndarray  # bool: the eager implementation synchronises host and GPU in every layer
    simt_convs: np.ndarray  # bool: convolutions run on CUDA cores in fp32 (no TF32 tensor cores): Winograd
    vocab: np.ndarray
    tied: np.ndarray  # bool: input and output embeddings shared
    experts: np.ndarray
    active_experts: np.ndarray
    expert_ffn: np.ndarray
    shared_ffn: np.ndarray
    params: np.ndarray  # total parameters (transformers; 0 for CNNs)
    active_params: np.ndarray
    expert_params: np.ndarray  # routed-expert parameters
    # precision and parallelism
    w_bytes: np.ndarray  # weight element size
    expert_w_bytes: np.ndarray  # routed experts' weight element size (a checkpoint's narrower format)
    expert_channel_scaled: np.ndarray  # bool: 8-bit experts scaled per channel (epilogue), not per block
    # rows per block a serving engine's grouped GEMM of block-scaled 8-bit experts computes, its buffer's
    # worst-case padding included (energaizer.hardware.GROUPED_FP8_BLOCK_ROWS; 0: the routed rows only)
    expert_block_rows: np.ndarray
    a_bytes: np.ndarray  # activation / KV element size
    gpu_count: np.ndarray
    tp: np.ndarray  # tensor parallelism of the attention and dense layers (of one engine)
    dp: np.ndarray  # training: data-parallel replicas
    ep: np.ndarray  # inference: GPUs the MoE experts are placed on, whole (1: experts sliced by TP)
    engines: np.ndarray  # inference: data-parallel attention engines of the replica
    # inference
    requests: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    concurrency: np.ndarray  # requests served at once (CNN: images per pass), before memory limits
    prompt_logits: np.ndarray  # bool: the vocabulary projection covers every prompt token
    # training
    steps: np.ndarray
    global_batch: np.ndarray
    seq: np.ndarray
    recompute: np.ndarray  # bool: activation recomputation
    mb_limit: np.ndarray  # training: most sequences per micro-batch the chosen layout allows (0: no limit)

    def take(self, rows: np.ndarray) -> RowParams:
        """The parameters of ``rows`` only (every column indexed by ``rows``)."""
        return RowParams(**{name: getattr(self, name)[rows] for name in _FIELDS})


BOOL_FIELDS = frozenset(
    {
        "is_cnn",
        "decoder",
        "training",
        "eager_attention",
        "eager_dispatch",
        "legacy_engine",
        "gated",
        "rotary",
        "rms_norm",
        "softmax_fp32",
        "host_syncs",
        "simt_convs",
        "tied",
        "recompute",
        "prompt_logits",
        "mla",
        "expert_channel_scaled",
    }
)
# Columns that depend on the architecture alone (computed once per distinct model).
ARCH_FIELDS = (
    "is_cnn",
    "decoder",
    "layers",
    "moe_layers",
    "dense_layers",
    "block_pairs",
    "mamba_layers",
    "mamba_inner",
    "mamba_heads",
    "ssm_state",
    "mamba_groups",
    "conv_kernel",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "kv_elems",
    "mla",
    "window",
    "window_frac",
    "ffn",
    "gated",
    "act_kernels",
    "rotary",
    "rms_norm",
    "score_kernels",
    "softmax_fp32",
    "host_syncs",
    "vocab",
    "tied",
    "experts",
    "active_experts",
    "expert_ffn",
    "shared_ffn",
    "params",
    "active_params",
    "expert_params",
    "expert_channel_scaled",
)
_FIELDS = tuple(f.name for f in fields(RowParams))


def kv_elements_per_gpu(p: RowParams) -> np.ndarray:
    """Elements one layer caches per token on one GPU: K/V heads split over tensor parallelism (a KV
    head is replicated when there are fewer than ranks), MLA's latent replicated on every rank."""
    heads_split = p.kv_elems / np.maximum(p.kv_heads, 1.0) * np.maximum(p.kv_heads / p.tp, 1.0)
    return np.where(p.mla, p.kv_elems, heads_split)


# Mamba-2 recurrent state in fp32: Nemotron-H checkpoints set ``mamba_ssm_cache_dtype: float32`` and
# their model cards serve them so (vLLM ``--mamba-ssm-cache-dtype float32``); 16-bit states drift.
SSM_STATE_BYTES = 4.0


def mamba_conv_channels(p: RowParams) -> np.ndarray:
    """Channels of a Mamba-2 layer's causal convolution on one GPU: x, B and C (inner + 2 x groups x N)."""
    return (p.mamba_inner + 2.0 * p.mamba_groups * p.ssm_state) / p.tp


def mamba_state_bytes(p: RowParams) -> tuple[np.ndarray, np.ndarray]:
    """(SSM state, convolution state) bytes of one sequence in one Mamba-2 layer on one GPU (heads split
    over tensor parallelism): heads x head width x N in fp32, and the convolution's last k - 1 inputs of
    x, B and C (activation dtype). Fixed whatever the context length."""
    ssm = p.mamba_inner / p.tp * p.ssm_state * SSM_STATE_BYTES
    return ssm, mamba_conv_channels(p) * np.maximum(p.conv_kernel - 1.0, 0.0) * p.a_bytes


def mamba_state_bytes_per_gpu(p: RowParams) -> np.ndarray:
    """Bytes one sequence holds in every Mamba-2 layer on one GPU (:func:`mamba_state_bytes`)."""
    ssm, conv = mamba_state_bytes(p)
    return p.mamba_layers * (ssm + conv)


def cached_tokens(p: RowParams, length) -> np.ndarray:
    """Tokens a layer caches (and attends to) for a context of ``length``, averaged over the layers:
    sliding-window layers hold at most the window."""
    capped = np.where(p.window > 0, np.minimum(length, p.window), length)
    return (1.0 - p.window_frac) * length + p.window_frac * capped


def layer_counts(a: ModelArchitecture) -> tuple[int, int, int]:
    """(attention, dense MLP, MoE) layers of a transformer or hybrid."""
    attn_layers, mlp_layers = a.attention_layers_ or 0, a.mlp_layers_ or 0
    moe_layers = round(mlp_layers * a.moe_layer_fraction) if a.is_moe else 0
    return attn_layers, mlp_layers - moe_layers, moe_layers


def transformer_params(a: ModelArchitecture) -> tuple[float, float]:
    """(total, active) parameter counts of a transformer, from its shapes."""
    d, h, kv, hd = a.hidden or 0, a.heads or 0, a.kv_heads_, a.head_dim_
    mats = 3 if a.gated_mlp else 2
    attn = d * (h + 2 * kv) * hd + h * hd * d
    attn_layers, dense_layers, moe_layers = layer_counts(a)
    dense_mlp = mats * d * (a.ffn or 0)
    shared = mats * d * (a.moe_shared_ffn or 0)
    expert = mats * d * (a.moe_expert_ffn or a.ffn or 0)
    emb = (a.vocab or 0) * d * (1 if a.tied_embeddings or a.arch_type == "encoder" else 2)
    mamba = a.mamba_layers * mamba_layer_params(a)
    total = (
        attn_layers * attn
        + dense_layers * dense_mlp
        + moe_layers * (shared + (a.moe_experts or 0) * expert)
        + mamba
        + emb
    )
    active = (
        attn_layers * attn
        + dense_layers * dense_mlp
        + moe_layers * (shared + (a.moe_active_experts or 0) * expert)
        + mamba
    )
    return float(total), float(active + emb)


def mamba_in_width(inner, groups, state, heads):
    """Output width of a Mamba-2 input projection: z and x (the inner width each), B and C (groups x
    state each) and one step size per head."""
    return 2.0 * inner + 2.0 * groups * state + heads


def mamba_layer_params(a: ModelArchitecture) -> float:
    """Parameters of one Mamba-2 mixer: input projection, causal convolution over x, B and C, output
    projection, and per-head A, D and step bias plus the gated norm's weight."""
    if not a.mamba_layers:
        return 0.0
    d, inner, g, n, h = (
        a.hidden or 0,
        a.mamba_inner,
        a.mamba_groups,
        a.ssm_state_size or 0,
        a.mamba_heads or 0,
    )
    conv = (inner + 2 * g * n) * (a.conv_kernel + 1)
    return float(d * mamba_in_width(inner, g, n, h) + inner * d + conv + 3 * h + inner)


def default_tensor_parallel(w: Workload, a: ModelArchitecture, gpu: GPUSpec) -> int:
    """Inference: the GPUs of one attention engine (:attr:`Workload.engine_tensor_parallel`; a CNN: 1 unless
    given). Training: the given degree, else the smallest power of two whose share of weights and optimizer
    state (16 B/param) fits in 60 % of one GPU, capped at 8 and at gpu_count."""
    if w.task == "inference" and a.arch_type != "cnn":
        return w.engine_tensor_parallel
    if w.tensor_parallel:
        return w.tensor_parallel
    if a.arch_type == "cnn":
        return 1
    total, _ = transformer_params(a)
    tp = 1
    while (
        tp < min(8, w.gpu_count)
        and total * 16.0 / tp > 0.6 * gpu.memory_gb * 1e9
        and w.gpu_count % (tp * 2) == 0
    ):
        tp *= 2
    return tp


def execution_style(w: Workload) -> tuple[str, str]:
    """(attention, dispatch) after resolving ``auto`` to today's production stacks.

    Attention is fused (SDPA / FlashAttention) for every workload, prefill-only passes included.
    Inference runs as a serving engine does: fused kernels, CUDA-graph decode steps at every batch
    size, host time per pass and per decode step. Training steps are dispatched kernel by kernel by
    the framework (PyTorch, Megatron-LM and HF Trainer do not capture training steps in graphs).
    Eager attention (matmul + softmax kernels) and eager inference dispatch (plain PyTorch,
    HF ``generate()``) are opt-in: ``attention: eager``, ``execution: eager``.
    """
    attention = "flash" if w.attention == "auto" else w.attention
    dispatch = w.execution
    if dispatch == "auto":
        dispatch = "eager" if w.task == "training" else "graphs"
    return attention, dispatch


def _arch_columns(a: ModelArchitecture) -> tuple[float, ...]:
    """The ``ARCH_FIELDS`` of one architecture (zeros but ``is_cnn`` for a CNN)."""
    if a.arch_type == "cnn":
        return (1.0, *([0.0] * (len(ARCH_FIELDS) - 1)))
    attn_layers, dense_layers, moe_layers = layer_counts(a)
    total, active = transformer_params(a)
    return (
        0.0,
        float(a.arch_type == "decoder"),
        attn_layers,
        moe_layers,
        dense_layers,
        (attn_layers + dense_layers + moe_layers + a.mamba_layers) / 2.0,
        a.mamba_layers,
        a.mamba_inner,
        a.mamba_heads or 0,
        a.ssm_state_size or 0,
        a.mamba_groups,
        a.conv_kernel,
        a.hidden or 0,
        a.heads or 0,
        a.kv_heads_,
        a.head_dim_,
        a.kv_elements_per_token,
        float(bool(a.kv_lora_rank)),
        a.sliding_window or 0,
        a.windowed_layer_fraction,
        a.ffn or 0,
        float(a.gated_mlp),
        float(a.eager_activation_kernels),
        float(a.gated_mlp if a.rotary_embeddings is None else a.rotary_embeddings),
        float(a.gated_mlp if a.rms_norm is None else a.rms_norm),
        float(a.eager_score_kernels),
        float(a.eager_softmax_fp32),
        float(a.eager_host_syncs),
        a.vocab or 0,
        float(a.tied_embeddings),
        a.moe_experts or 0,
        a.moe_active_experts or 0,
        a.moe_expert_ffn or a.ffn or 0,
        a.moe_shared_ffn or 0,
        total,
        active,
        moe_layers
        * (a.moe_experts or 0)
        * (2.0 + a.gated_mlp)
        * (a.hidden or 0)
        * (a.moe_expert_ffn or a.ffn or 0),
        float(a.expert_scaling == "channel"),
    )


def build_row_params(
    workloads: list[Workload], gpus: list[GPUSpec], archs: list[ModelArchitecture]
) -> RowParams:
    """The parameters of every (workload, GPU, architecture) row: the architecture's shapes, the
    resolved execution style (attention, dispatch), element sizes, tensor/data parallelism, and the
    inference or training sizes. The one place that loops over workloads in Python."""
    n = len(workloads)
    arch_index: dict[int, int] = {}
    arch_rows: list[tuple[float, ...]] = []
    which = np.empty(n, dtype=np.int64)
    per_row = ARCH_FIELDS
    cols: dict[str, list[float]] = {name: [0.0] * n for name in _FIELDS if name not in per_row}
    c = cols
    for i, (w, gpu, a) in enumerate(zip(workloads, gpus, archs, strict=True)):
        j = arch_index.get(id(a))
        if j is None:
            j = arch_index[id(a)] = len(arch_rows)
            arch_rows.append(_arch_columns(a))
        which[i] = j
        is_cnn = a.arch_type == "cnn"
        c["simt_convs"][i] = float(
            is_cnn and w.precision in ("fp32", "tf32") and "tf32" not in gpu.peak_tflops
        )
        c["training"][i] = float(w.task == "training")
        attention, dispatch = execution_style(w)
        c["eager_attention"][i] = float(attention == "eager")
        c["eager_dispatch"][i] = float(dispatch == "eager")
        c["legacy_engine"][i] = float(dispatch == "legacy-engine")
        c["w_bytes"][i] = PRECISION_BYTES[w.precision] if w.task == "inference" else 2.0
        c["a_bytes"][i] = ACTIVATION_BYTES.get(w.precision, 2.0)
        if w.task == "training" and w.precision in ("fp32", "tf32"):
            c["w_bytes"][i] = 4.0
        c["expert_w_bytes"][i] = c["w_bytes"][i]
        if a.expert_precision and w.task == "inference":
            # a checkpoint that ships its experts quantised (gpt-oss: MXFP4) is served so at any dtype
            c["expert_w_bytes"][i] = min(c["w_bytes"][i], PRECISION_BYTES[a.expert_precision])
        if (
            dispatch == "graphs"
            and a.is_moe
            and a.expert_scaling == "block"
            and c["expert_w_bytes"][i] == 1.0
            and "fp8" in gpu.peak_tflops
        ):
            c["expert_block_rows"][i] = GROUPED_FP8_BLOCK_ROWS.get(gpu.architecture, 0.0)
        c["gpu_count"][i] = w.gpu_count
        tp = default_tensor_parallel(w, a, gpu)
        c["tp"][i] = tp
        c["dp"][i] = w.gpu_count // tp
        c["engines"][i] = (
            w.inference_engines if w.task == "inference" and not is_cnn else (w.data_parallel or 1)
        )
        c["ep"][i] = (w.expert_parallel or 1) if a.is_moe else 1
        if w.inference is not None:
            inf = w.inference
            c["requests"][i] = inf.requests
            c["input_tokens"][i] = a.image_tokens or inf.input_tokens
            c["output_tokens"][i] = inf.output_tokens if a.arch_type == "decoder" else 0
            c["concurrency"][i] = min(inf.batch_size, inf.requests)
            c["prompt_logits"][i] = float(inf.prompt_logits)
        if w.training is not None:
            tr = w.training
            seq = float(a.image_tokens or tr.sequence_length) if not is_cnn else 1.0
            c["global_batch"][i] = tr.global_batch_size
            c["seq"][i] = seq
            c["steps"][i] = tr.total_steps
            c["recompute"][i] = float(tr.activation_recomputation)
    table = np.array(arch_rows, dtype=np.float64).reshape(len(arch_rows), len(ARCH_FIELDS))
    out = {name: np.asarray(v, dtype=np.float64) for name, v in cols.items()}
    for k, name in enumerate(ARCH_FIELDS):
        out[name] = table[which, k] if n else np.zeros(0)
    for name in BOOL_FIELDS:
        out[name] = out[name] > 0
    return RowParams(**out)
