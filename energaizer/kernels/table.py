"""A columnar table of kernels: one entry per distinct kernel shape of a row, with its count.

Every array has one element per kernel entry; ``row`` says which (workload, GPU) pair it belongs to,
``op`` which operation it is (:class:`energaizer.kernels.ops.Op`, which fixes its ``kind``) and
``phase`` where in the workload it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from energaizer.kernels.ops import OP_KIND, Op, Phase


@dataclass
class KernelTable:
    """Columns of the kernel table. ``count`` = launches of this shape over the whole workload."""

    row: np.ndarray
    op: np.ndarray  # Op
    kind: np.ndarray  # Kind (from the op)
    phase: np.ndarray  # Phase
    count: np.ndarray
    m: np.ndarray  # GEMM rows (tokens); for ATTENTION: query rows per (batch*head)
    n: np.ndarray  # GEMM cols
    k: np.ndarray  # GEMM reduction dim
    gemm_group: np.ndarray  # independent GEMMs (batched GEMM, conv groups) / attention heads in one launch
    flops: np.ndarray  # tensor-core (or SIMT for fp32) FLOPs per launch
    fp_flops: np.ndarray  # CUDA-core FLOPs per launch (softmax, activations, optimizer math)
    bytes: np.ndarray  # compulsory DRAM bytes per launch
    comm_bytes: np.ndarray  # bytes each GPU sends for COMM kernels (ring algorithm already applied)
    precision_bytes: np.ndarray  # element size of the operands
    moe_grouped: np.ndarray  # bool: a MoE grouped expert GEMM (one launch over the experts hit)
    # bool: its low-precision weights carry one scale per output channel (applied in the epilogue),
    # not one per 128 x 128 block (rescaled after every K block)
    channel_scaled: np.ndarray
    busy_share: np.ndarray  # share of the GPUs' time spent on the work (1; expert parallelism: the
    # other ranks wait for the busiest one at idle power)
    # bytes a kernel of an eager elementwise chain touches (the tensors its neighbours wrote or read
    # next); 0: no L2 residency rule (see energaizer.timing.kernel_time.l2_resident_share)
    l2_footprint: np.ndarray
    # bool: launched by eager framework code (PyTorch's elementwise and reduction kernels, one per op)
    # rather than by a fused engine or library kernel; set by the pipeline from the row's execution
    eager: np.ndarray
    # bool: streams whole per-sequence recurrent states (Mamba-2's selective state update), contiguous
    # per sequence, not gathered from a paged cache (see energaizer.hardware.STATE_STREAM_BYTES_PER_SM_CYCLE)
    recurrent_state: np.ndarray
    # bool: decode attention over one latent per token shared by every head (MLA: DeepSeek's CUTLASS MLA /
    # FlashMLA kernels, not a serving engine's GQA decode kernels)
    latent_attention: np.ndarray


@dataclass
class KernelTableBuilder:
    """Accumulates kernel columns from vectorised templates, then concatenates once."""

    parts: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _COLUMNS})

    def add(self, rows: np.ndarray, op: Op, phase: Phase, count, **cols) -> None:
        """Entries ``op`` in ``phase`` for ``rows``, launched ``count`` times each; ``cols`` are the
        shape columns (scalars or arrays over ``rows``; omitted ones take their defaults)."""
        rows = np.asarray(rows, dtype=np.int64)
        size = rows.shape[0]
        if size == 0:
            return
        full = {
            "row": rows,
            "op": np.full(size, op, np.int8),
            "kind": np.full(size, OP_KIND[op], np.int8),
            "phase": np.full(size, phase, np.int8),
        }
        full["count"] = np.broadcast_to(np.asarray(count, dtype=np.float64), (size,))
        for name in _COLUMNS[5:]:
            default = 1.0 if name in ("gemm_group", "m", "n", "k", "precision_bytes", "busy_share") else 0.0
            dtype = _DTYPES.get(name, np.float64)
            full[name] = np.broadcast_to(np.asarray(cols.pop(name, default), dtype=dtype), (size,))
        if cols:
            raise TypeError(f"unknown kernel columns: {sorted(cols)}")
        for name in _COLUMNS:
            self.parts[name].append(full[name])

    def build(self) -> KernelTable:
        cols = {}
        for name in _COLUMNS:
            chunks = self.parts[name]
            cols[name] = (
                np.concatenate(chunks) if chunks else np.zeros(0, dtype=_DTYPES.get(name, np.float64))
            )
        keep = cols["count"] > 0
        return KernelTable(**{k: v[keep] for k, v in cols.items()})


_DTYPES = {
    "row": np.int64,
    "op": np.int8,
    "kind": np.int8,
    "phase": np.int8,
    "moe_grouped": np.bool_,
    "channel_scaled": np.bool_,
    "eager": np.bool_,
    "recurrent_state": np.bool_,
    "latent_attention": np.bool_,
}
_COLUMNS = (
    "row",
    "op",
    "kind",
    "phase",
    "count",
    "m",
    "n",
    "k",
    "gemm_group",
    "flops",
    "fp_flops",
    "bytes",
    "comm_bytes",
    "precision_bytes",
    "moe_grouped",
    "channel_scaled",
    "busy_share",
    "l2_footprint",
    "eager",
    "recurrent_state",
    "latent_attention",
)
