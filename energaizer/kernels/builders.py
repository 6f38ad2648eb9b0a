"""Kernel builders shared by the transformer and CNN models: a GEMM, a memory-bound pass, a ring
all-reduce and an optimizer step, each added to a :class:`KernelTableBuilder` for many rows at once.

Arguments are arrays over ``rows`` (or scalars); ``count`` is the launches of the kernel over the
whole workload.
"""

from __future__ import annotations

import numpy as np

from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder

# AdamW with fp32 master weights: read p, g, m, v; write p, m, v, bf16 copy.
OPTIMIZER_BYTES_PER_PARAM = 32.0
OPTIMIZER_FLOPS_PER_PARAM = 12.0


def gemm(
    b: KernelTableBuilder,
    rows,
    op: Op,
    phase: Phase,
    count,
    m,
    n,
    k,
    wb,
    ab,
    gemm_group=1.0,
    weights: bool = True,
    moe_grouped: bool = False,
    channel_scaled=False,
    busy_share=1.0,
    b_operands=None,
) -> None:
    """``gemm_group`` GEMMs [m x k] @ [k x n] in one launch; the B operand is a weight (element size
    ``wb``) or, with ``weights=False``, an activation (``ab``). ``moe_grouped``: one MoE launch over
    the experts hit (``gemm_group`` of them); ``channel_scaled``: its low-precision weights scale per
    output channel, not per block; ``busy_share``: share of the GPUs busy with it; ``b_operands``: the
    distinct B operands the groups read from DRAM (default: one per group; fewer where groups share one,
    as row blocks of one expert do)."""
    gemm_group = np.asarray(gemm_group, dtype=np.float64)
    b_groups = gemm_group if b_operands is None else np.asarray(b_operands, dtype=np.float64)
    b_elem = wb if weights else ab
    nbytes = gemm_group * (m * k * ab + m * n * ab) + b_groups * k * n * b_elem
    b.add(
        rows,
        op,
        phase,
        count,
        m=m,
        n=n,
        k=k,
        gemm_group=gemm_group,
        flops=2.0 * gemm_group * m * n * k,
        bytes=nbytes,
        precision_bytes=np.minimum(wb, ab) if weights else ab,
        moe_grouped=moe_grouped,
        channel_scaled=channel_scaled,
        busy_share=busy_share,
    )


def memory(
    b: KernelTableBuilder,
    rows,
    op: Op,
    phase: Phase,
    count,
    nbytes,
    fp_flops=0.0,
    l2_footprint=0.0,
    recurrent_state: bool = False,
) -> None:
    """A memory-bound pass moving ``nbytes`` bytes with ``fp_flops`` CUDA-core FLOPs per launch;
    ``l2_footprint`` > 0: a kernel of an eager chain touching that many bytes, served from L2 where
    they fit (:func:`energaizer.timing.kernel_time.l2_resident_share`); ``recurrent_state``: it streams
    whole per-sequence recurrent states."""
    b.add(
        rows,
        op,
        phase,
        count,
        bytes=nbytes,
        fp_flops=fp_flops,
        l2_footprint=l2_footprint,
        recurrent_state=recurrent_state,
    )


def allreduce(b: KernelTableBuilder, rows, op: Op, phase: Phase, count, size_bytes, group) -> None:
    """Ring all-reduce of ``size_bytes`` over ``group`` GPUs: each sends 2(g-1)/g of it; nothing on
    one GPU."""
    group = np.asarray(group, dtype=np.float64)
    sent = np.where(group > 1, 2.0 * (group - 1.0) / np.maximum(group, 1.0) * size_bytes, 0.0)
    b.add(rows, op, phase, np.where(group > 1, count, 0.0), comm_bytes=sent, bytes=2.0 * size_bytes, m=group)


def all_to_all(b: KernelTableBuilder, rows, op: Op, phase: Phase, count, size_bytes, group) -> None:
    """All-to-all of ``size_bytes`` per GPU over ``group`` GPUs: each sends (g-1)/g of it."""
    group = np.asarray(group, dtype=np.float64)
    sent = np.where(group > 1, (group - 1.0) / np.maximum(group, 1.0) * size_bytes, 0.0)
    b.add(rows, op, phase, np.where(group > 1, count, 0.0), comm_bytes=sent, bytes=2.0 * size_bytes, m=group)


def optimizer_step(b: KernelTableBuilder, rows, steps, params_per_gpu, dp) -> None:
    """Per optimizer step: the AdamW update of the GPU's parameters and the data-parallel all-reduce
    of their (16-bit) gradients over ``dp`` replicas."""
    memory(
        b,
        rows,
        Op.OPTIMIZER,
        Phase.OPTIMIZER,
        steps,
        OPTIMIZER_BYTES_PER_PARAM * params_per_gpu,
        fp_flops=OPTIMIZER_FLOPS_PER_PARAM * params_per_gpu,
    )
    allreduce(b, rows, Op.GRAD_ALLREDUCE, Phase.OPTIMIZER, steps, 2.0 * params_per_gpu, dp)
