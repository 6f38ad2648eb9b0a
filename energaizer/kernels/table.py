"""A columnar table of kernels: one entry per distinct kernel shape of a row, with its count.

Every array has one element per kernel entry; ``row`` says which (workload, GPU) pair it belongs to.
Kinds: GEMM (tiled, tensor cores), ATTENTION (fused flash attention), EAGER_ATTENTION (separate
score GEMMs + softmax), MEMORY (elementwise / norm / optimizer: memory bound, CUDA cores),
COMM (a collective over NVLink/PCIe).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GEMM, ATTENTION, MEMORY, COMM = 0, 1, 2, 3
KIND_NAMES = ("gemm", "attention", "memory", "comm")

# Phases, for the time breakdown.
PHASES = ("prefill", "decode", "forward", "backward", "optimizer")


@dataclass
class KernelTable:
    """Columns of the kernel table. ``count`` = launches of this shape over the whole workload."""

    row: np.ndarray
    kind: np.ndarray
    phase: np.ndarray
    count: np.ndarray
    m: np.ndarray  # GEMM rows (tokens); for ATTENTION: query rows per (batch*head)
    n: np.ndarray  # GEMM cols
    k: np.ndarray  # GEMM reduction dim
    batch: np.ndarray  # independent GEMMs / attention heads in one launch
    flops: np.ndarray  # tensor-core (or SIMT for fp32) FLOPs per launch
    fp_flops: np.ndarray  # CUDA-core FLOPs per launch (softmax, activations, optimizer math)
    bytes: np.ndarray  # compulsory DRAM bytes per launch
    comm_bytes: np.ndarray  # bytes each GPU sends for COMM kernels (ring algorithm already applied)
    precision_bytes: np.ndarray  # element size of the operands
    grouped: np.ndarray  # 1 for a MoE grouped expert GEMM (one launch over the touched experts)


@dataclass
class KernelTableBuilder:
    """Accumulates kernel columns from vectorised templates, then concatenates once."""

    parts: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _COLUMNS})

    def add(self, rows: np.ndarray, kind: int, phase: int, count, **cols) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        size = rows.shape[0]
        if size == 0:
            return
        full = {"row": rows, "kind": np.full(size, kind, np.int8), "phase": np.full(size, phase, np.int8)}
        full["count"] = np.broadcast_to(np.asarray(count, dtype=np.float64), (size,))
        for name in _COLUMNS[4:]:
            default = 1.0 if name in ("batch", "m", "n", "k", "precision_bytes") else 0.0
            full[name] = np.broadcast_to(np.asarray(cols.pop(name, default), dtype=np.float64), (size,))
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


_DTYPES = {"row": np.int64, "kind": np.int8, "phase": np.int8}
_COLUMNS = (
    "row",
    "kind",
    "phase",
    "count",
    "m",
    "n",
    "k",
    "batch",
    "flops",
    "fp_flops",
    "bytes",
    "comm_bytes",
    "precision_bytes",
    "grouped",
)
