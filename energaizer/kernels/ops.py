"""The names of kernels: their kind (which hardware model times them), phase and operation.

Every entry of the kernel table carries one :class:`Op`; the op fixes the kind (``OP_KIND``), so a
per-op breakdown of energy and time (``estimate --json``, key ``ops``) needs nothing but the table.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Kind(IntEnum):
    """How a kernel is timed (``energaizer.timing.kernel_time``)."""

    GEMM = 0  # tiled matrix multiply (tensor cores, or CUDA cores in fp32)
    ATTENTION = 1  # fused (flash) attention
    MEMORY = 2  # memory-bound elementwise / norm / softmax / optimizer pass on the CUDA cores
    COMM = 3  # a collective over NVLink / PCIe


class Phase(IntEnum):
    """Where in the workload a kernel runs; the keys of ``time_breakdown``."""

    PREFILL = 0
    DECODE = 1
    FORWARD = 2
    BACKWARD = 3
    OPTIMIZER = 4


class Op(IntEnum):
    """The operation a kernel performs (its name in ``ops``: the lower-case member name)."""

    QKV_PROJ = 0  # query/key/value projection
    ATTN_OUT = 1  # attention output projection
    MLP_UP = 2  # dense MLP up (and gate) projection
    MLP_DOWN = 3  # dense MLP down projection
    MOE_UP = 4  # routed experts' up (and gate) projections: one grouped GEMM over the experts hit
    MOE_DOWN = 5  # routed experts' down projections (grouped)
    SHARED_EXPERT_UP = 6
    SHARED_EXPERT_DOWN = 7
    ROUTER = 8  # MoE router logits
    ATTENTION = 9  # fused attention (flash attention; a CNN's attention blocks)
    ATTN_SCORES = 10  # eager attention: Q K^T
    SOFTMAX = 11  # eager attention: scale, mask and softmax passes over the scores
    ATTN_VALUES = 12  # eager attention: probabilities x V
    NORM_ACT = 13  # norms, residual adds, rotary embeddings, activations between GEMMs
    ACTIVATION = 14  # the extra kernels of an unfused eager MLP activation (GPT-2's gelu_new)
    TP_ALLREDUCE = 15  # tensor-parallel all-reduce of the hidden state
    EMBEDDING = 16  # token embedding lookup / hidden-state copy in and out
    LM_HEAD = 17  # vocabulary projection
    LOGITS = 18  # sampling or cross-entropy over the logits (fp32)
    OPTIMIZER = 19  # AdamW update with fp32 master weights
    GRAD_ALLREDUCE = 20  # data-parallel gradient all-reduce
    CONV = 21  # convolution as an implicit GEMM (or Winograd's batched GEMMs)
    WINOGRAD_TRANSFORM = 22  # Winograd input / output tile transforms
    LINEAR = 23  # a plain linear layer (a CNN's MLP / classifier head)
    ELEMENTWISE = 24  # other elementwise work (pooling, squeeze-and-excitation scaling)
    EP_ALL_TO_ALL = 25  # expert parallelism: dispatch of tokens to their experts' ranks and combine back
    DEPTHWISE_CONV = 26  # depthwise convolution: a direct kernel on the CUDA cores (MobileNet, MobileViT)
    MAMBA_IN_PROJ = 27  # Mamba-2 input projection (z, x, B, C, step sizes)
    MAMBA_OUT_PROJ = 28  # Mamba-2 output projection
    MAMBA_SCAN = 29  # Mamba-2 chunked scan (SSD) of a prefill: its matmuls within and across chunks
    MAMBA_STATE = 30  # Mamba-2 convolution, recurrent state passes and gated norm (a decode step's update)
    AMP_CAST = 31  # autocast training: fp32 weights, inputs and gradients to and from 16 bit
    MOE_COMBINE = 32  # MoE expert slots: the activation between the grouped GEMMs and the weighted sum after
    LAYOUT_TRANSPOSE = 33  # cuDNN's NCHW <-> NHWC copies around a 16-bit tensor-core convolution


OP_KIND: dict[Op, Kind] = {
    Op.QKV_PROJ: Kind.GEMM,
    Op.ATTN_OUT: Kind.GEMM,
    Op.MLP_UP: Kind.GEMM,
    Op.MLP_DOWN: Kind.GEMM,
    Op.MOE_UP: Kind.GEMM,
    Op.MOE_DOWN: Kind.GEMM,
    Op.SHARED_EXPERT_UP: Kind.GEMM,
    Op.SHARED_EXPERT_DOWN: Kind.GEMM,
    Op.ROUTER: Kind.GEMM,
    Op.ATTENTION: Kind.ATTENTION,
    Op.ATTN_SCORES: Kind.GEMM,
    Op.SOFTMAX: Kind.MEMORY,
    Op.ATTN_VALUES: Kind.GEMM,
    Op.NORM_ACT: Kind.MEMORY,
    Op.ACTIVATION: Kind.MEMORY,
    Op.TP_ALLREDUCE: Kind.COMM,
    Op.EMBEDDING: Kind.MEMORY,
    Op.LM_HEAD: Kind.GEMM,
    Op.LOGITS: Kind.MEMORY,
    Op.OPTIMIZER: Kind.MEMORY,
    Op.GRAD_ALLREDUCE: Kind.COMM,
    Op.CONV: Kind.GEMM,
    Op.WINOGRAD_TRANSFORM: Kind.MEMORY,
    Op.LINEAR: Kind.GEMM,
    Op.ELEMENTWISE: Kind.MEMORY,
    Op.EP_ALL_TO_ALL: Kind.COMM,
    Op.DEPTHWISE_CONV: Kind.MEMORY,
    Op.MAMBA_IN_PROJ: Kind.GEMM,
    Op.MAMBA_OUT_PROJ: Kind.GEMM,
    Op.MAMBA_SCAN: Kind.GEMM,
    Op.MAMBA_STATE: Kind.MEMORY,
    Op.AMP_CAST: Kind.MEMORY,
    Op.MOE_COMBINE: Kind.MEMORY,
    Op.LAYOUT_TRANSPOSE: Kind.MEMORY,
}

PHASES: tuple[str, ...] = tuple(p.name.lower() for p in Phase)
OP_NAMES: tuple[str, ...] = tuple(o.name.lower() for o in Op)
# kind of each op, indexed by op value (for vectorised lookups)
OP_KIND_ARRAY = np.array([OP_KIND[o] for o in Op], dtype=np.int8)
