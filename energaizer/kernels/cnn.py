"""CNN workloads -> kernels: convolutions as implicit GEMMs, plus BN/activation passes.

Inference: ``requests`` images in passes of ``batch`` images. Training: ``steps`` of
``global_batch`` images (split over data-parallel replicas), forward + backward (2x GEMMs) +
optimizer update + gradient all-reduce.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from energaizer.catalog.schema import CNNSpec
from energaizer.kernels.params import RowParams
from energaizer.kernels.table import ATTENTION, GEMM, MEMORY, KernelTableBuilder
from energaizer.kernels.transformer import (
    BACKWARD,
    FORWARD,
    OPTIMIZER,
    OPTIMIZER_BYTES_PER_PARAM,
    OPTIMIZER_FLOPS_PER_PARAM,
    PREFILL,
    _allreduce,
)


@cache
def cnn_shape_arrays(spec: CNNSpec) -> dict[str, np.ndarray | float]:
    """Per-image layer shapes of a CNN as arrays (cached per spec)."""
    from energaizer.kernels.cnn_layers import cnn_layers

    graph = cnn_layers(spec)
    conv = np.array(
        [[c.cin, c.cout, c.k, c.stride, c.groups, c.h_out, c.w_out] for c in graph.convs], dtype=np.float64
    ).reshape(-1, 7)
    lin = np.array([[x.tokens, x.d_in, x.d_out] for x in graph.linears], dtype=np.float64).reshape(-1, 3)
    att = np.array([[a.tokens, a.heads, a.head_dim] for a in graph.attentions], dtype=np.float64).reshape(
        -1, 3
    )
    return {
        "conv": conv,
        "linear": lin,
        "attention": att,
        "elementwise": float(graph.elementwise_elems),
        "params": float(graph.params),
    }


def cnn_params(spec: CNNSpec) -> float:
    return float(cnn_shape_arrays(spec)["params"])


def _add_pass(
    b: KernelTableBuilder,
    row: int,
    phase: int,
    count: float,
    images: float,
    shapes: dict,
    wb: float,
    ab: float,
    eager: bool,
    backward: bool,
) -> None:
    gm = 2.0 if backward else 1.0
    conv = shapes["conv"]
    if conv.size:
        cin, cout, k, stride, groups, h, w = conv.T
        m = images * h * w
        n = cout / groups
        kk = k * k * cin / groups
        nbytes = (
            images * cin * (h * stride) * (w * stride) * ab
            + cout * cin / groups * k * k * wb
            + images * cout * h * w * ab
        )
        rows = np.full(len(cin), row)
        b.add(
            rows,
            GEMM,
            phase,
            count * gm,
            m=m,
            n=n,
            k=kk,
            batch=groups,
            flops=2.0 * m * n * kk * groups,
            bytes=nbytes,
            precision_bytes=min(wb, ab),
        )
        # batch-norm + activation (+ residual) as separate memory-bound passes in eager frameworks
        b.add(
            rows,
            MEMORY,
            phase,
            count * gm * 2.0,
            bytes=2.0 * images * cout * h * w * ab,
            fp_flops=4.0 * images * cout * h * w,
        )
    lin = shapes["linear"]
    if lin.size:
        tok, din, dout = lin.T
        m = images * tok
        rows = np.full(len(tok), row)
        b.add(
            rows,
            GEMM,
            phase,
            count * gm,
            m=m,
            n=dout,
            k=din,
            flops=2.0 * m * dout * din,
            bytes=m * din * ab + din * dout * wb + m * dout * ab,
            precision_bytes=min(wb, ab),
        )
        b.add(rows, MEMORY, phase, count * gm * 2.0, bytes=4.0 * m * dout * ab, fp_flops=8.0 * m * dout)
    att = shapes["attention"]
    if att.size:
        tok, heads, hd = att.T
        rows = np.full(len(tok), row)
        bh = images * heads
        flops = 4.0 * bh * tok * tok * hd * (2.5 if backward else 1.0)
        scores = bh * tok * tok * ab
        b.add(
            rows,
            ATTENTION,
            phase,
            count,
            m=tok,
            n=tok,
            k=hd,
            batch=bh,
            flops=flops,
            fp_flops=5.0 * bh * tok * tok,
            bytes=4.0 * bh * tok * hd * ab + (6.0 * scores if eager else 0.0),
            precision_bytes=ab,
        )
    b.add(
        np.array([row]),
        MEMORY,
        phase,
        count * gm,
        bytes=2.0 * images * shapes["elementwise"] * ab / 4.0,
        fp_flops=images * shapes["elementwise"] / 4.0,
    )


def add_cnn(b: KernelTableBuilder, p: RowParams, rows: np.ndarray, specs: list[CNNSpec]) -> np.ndarray:
    """Adds CNN kernels for ``rows``; returns the number of passes per row (for host overheads)."""
    passes_out = np.zeros(rows.size)
    for j, (row, spec) in enumerate(zip(rows.tolist(), specs, strict=True)):
        shapes = cnn_shape_arrays(spec)
        wb, ab = float(p.w_bytes[row]), float(p.a_bytes[row])
        eager = bool(p.eager_attention[row])
        if p.training[row]:
            images = max(p.global_batch[row] / p.dp[row], 1.0)
            steps = float(p.steps[row])
            _add_pass(b, row, FORWARD, steps, images, shapes, wb, ab, eager, backward=False)
            _add_pass(b, row, BACKWARD, steps, images, shapes, wb, ab, eager, backward=True)
            prm = float(shapes["params"])
            b.add(
                np.array([row]),
                MEMORY,
                OPTIMIZER,
                steps,
                bytes=OPTIMIZER_BYTES_PER_PARAM * prm,
                fp_flops=OPTIMIZER_FLOPS_PER_PARAM * prm,
            )
            _allreduce(
                b, np.array([row]), OPTIMIZER, np.array([steps]), np.array([2.0 * prm]), np.array([p.dp[row]])
            )
            passes_out[j] = steps
        else:
            batch = float(p.batch[row])
            passes = float(np.ceil(p.requests[row] / batch))
            _add_pass(b, row, PREFILL, passes, batch, shapes, wb, ab, eager, backward=False)
            passes_out[j] = passes
    return passes_out
