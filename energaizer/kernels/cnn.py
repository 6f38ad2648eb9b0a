"""CNN workloads -> kernels: convolutions as implicit GEMMs, plus BN/activation passes.

Inference: ``requests`` images in passes of ``batch`` images. Training: ``steps`` of
``global_batch`` images (split over data-parallel replicas), forward + backward (2x GEMMs) +
optimizer update + gradient all-reduce.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from energaizer.catalog.schema import CNNSpec
from energaizer.kernels.builders import gemm, optimizer_step
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.params import RowParams
from energaizer.kernels.table import KernelTableBuilder


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


# Winograd F(4x4, 3x3): a 6x6 input tile gives a 4x4 output tile, so 36 element-wise products replace
# 16 x 9 = 144 multiply-adds per tile and channel pair (4x fewer), done as 36 batched GEMMs.
WINO_TILE_OUT = 16.0
WINO_TILE_IN = 36.0


def add_winograd(
    b: KernelTableBuilder,
    r: np.ndarray,
    phase: Phase,
    count: np.ndarray,
    m: np.ndarray,
    n: np.ndarray,
    cin: np.ndarray,
    wb: np.ndarray,
    ab: np.ndarray,
) -> None:
    """A 3x3 stride-1 convolution on CUDA cores as cuDNN runs it in fp32 (``cudnn.benchmark`` picks the
    non-fused Winograd algorithm there; with TF32 or 16-bit tensor cores it picks implicit GEMM):
    transform the input tiles (2.25x the input written), 36 batched GEMMs over (output tiles x C_in) .
    (C_in x C_out), transform back. ``m`` = output pixels (= input pixels at stride 1), ``n`` = C_out."""
    expand = WINO_TILE_IN / WINO_TILE_OUT
    in_bytes, out_bytes = m * cin * ab, m * n * ab
    b.add(r, Op.WINOGRAD_TRANSFORM, phase, count, bytes=in_bytes * (1.0 + expand), fp_flops=in_bytes)
    gemm(b, r, Op.CONV, phase, count, m / WINO_TILE_OUT, n, cin, wb, ab, gemm_group=WINO_TILE_IN)
    b.add(r, Op.WINOGRAD_TRANSFORM, phase, count, bytes=out_bytes * (1.0 + expand), fp_flops=out_bytes)


def _add_pass(
    b: KernelTableBuilder,
    rows: np.ndarray,
    phase: Phase,
    count: np.ndarray,
    images: np.ndarray,
    shapes: dict,
    wb: np.ndarray,
    ab: np.ndarray,
    eager: np.ndarray,
    simt: np.ndarray,
    backward: bool,
) -> None:
    """One forward (or backward) pass of the network for each of ``rows`` (same network), vectorised as
    rows x layers."""
    gm = 2.0 if backward else 1.0

    def outer(layer_cols: np.ndarray, per_row: np.ndarray) -> tuple[np.ndarray, ...]:
        n_layers = layer_cols.shape[0]
        return (*(np.tile(c, rows.size) for c in layer_cols.T), np.repeat(per_row, n_layers, axis=1))

    per_row = np.stack([rows.astype(np.float64), count, images, wb, ab, eager.astype(np.float64), simt])
    conv = shapes["conv"]
    if conv.size:
        cin, cout, k, stride, groups, h, w, pr = outer(conv, per_row)
        r, cnt, img, wbb, abb = pr[0].astype(np.int64), pr[1], pr[2], pr[3], pr[4]
        m = img * h * w
        n = cout / groups
        kk = k * k * cin / groups
        in_bytes = img * cin * (h * stride) * (w * stride) * abb
        out_bytes = img * cout * h * w * abb
        nbytes = in_bytes + cout * cin / groups * k * k * wbb + out_bytes
        wino = (pr[6] > 0) & (k == 3) & (stride == 1) & (groups == 1)
        # A depthwise convolution (one filter per channel) is no GEMM: its N is 1, and as an implicit
        # GEMM every channel would pad a tensor-core tile 64-wide. cuDNN and PyTorch run it as a direct
        # kernel on the CUDA cores (k x k FMAs per output, the input tile staged once in shared memory):
        # memory-bound, its bytes the input, output and filters.
        depthwise = (groups > 1) & (groups == cin)
        direct = ~wino & ~depthwise
        b.add(
            r[direct],
            Op.CONV,
            phase,
            (cnt * gm)[direct],
            m=m[direct],
            n=n[direct],
            k=kk[direct],
            gemm_group=groups[direct],
            flops=(2.0 * m * n * kk * groups)[direct],
            bytes=nbytes[direct],
            precision_bytes=np.minimum(wbb, abb)[direct],
        )
        if depthwise.any():
            b.add(
                r[depthwise],
                Op.DEPTHWISE_CONV,
                phase,
                (cnt * gm)[depthwise],
                fp_flops=(2.0 * m * cout * k * k)[depthwise],
                bytes=nbytes[depthwise],
            )
        if wino.any():
            add_winograd(
                b,
                r[wino],
                phase,
                (cnt * gm)[wino],
                m[wino],
                n[wino],
                cin[wino],
                wbb[wino],
                abb[wino],
            )
        # cuDNN's 16-bit tensor-core convolutions are NHWC kernels, and PyTorch hands them NCHW tensors
        # (its default memory format): each GEMM pass copies its activation operand to NHWC first
        # (nchwToNhwcKernel; the results come back through nhwcToNchwKernel). The forward pass
        # transposes the input; the backward pass the output gradient (data gradient) and the input
        # (weight gradient). Measured on an H100 (benchmarks/results/h100-nvml-2026-11-22/profile):
        # ResNet-50 bf16, 4.3 ms of copies per 256-image forward pass and 7.1 ms per 128-image
        # training step, against 5.2 and 7.9 ms for these bytes at 2.1 TB/s.
        nchw = direct & (abb == 2.0)
        if nchw.any():
            moved = in_bytes + out_bytes if backward else in_bytes
            b.add(r[nchw], Op.LAYOUT_TRANSPOSE, phase, cnt[nchw], bytes=(2.0 * moved)[nchw])
        # batch-norm + activation (+ residual) as separate memory-bound passes in eager frameworks, each
        # reading and writing the activations; a training forward pass also reads each batch-norm input
        # once more for the batch statistics (2.5 passes per kernel on average over the two)
        passes = 2.5 if phase == Phase.FORWARD else 2.0
        b.add(
            r,
            Op.NORM_ACT,
            phase,
            cnt * gm * 2.0,
            bytes=passes * img * cout * h * w * abb,
            fp_flops=4.0 * img * cout * h * w,
        )
    lin = shapes["linear"]
    if lin.size:
        tok, din, dout, pr = outer(lin, per_row)
        r, cnt, img, wbb, abb = pr[0].astype(np.int64), pr[1], pr[2], pr[3], pr[4]
        m = img * tok
        b.add(
            r,
            Op.LINEAR,
            phase,
            cnt * gm,
            m=m,
            n=dout,
            k=din,
            flops=2.0 * m * dout * din,
            bytes=m * din * abb + din * dout * wbb + m * dout * abb,
            precision_bytes=np.minimum(wbb, abb),
        )
        b.add(r, Op.NORM_ACT, phase, cnt * gm * 2.0, bytes=4.0 * m * dout * abb, fp_flops=8.0 * m * dout)
    att = shapes["attention"]
    if att.size:
        tok, heads, hd, pr = outer(att, per_row)
        r, cnt, img, abb, eag = pr[0].astype(np.int64), pr[1], pr[2], pr[4], pr[5]
        bh = img * heads
        scores = bh * tok * tok * abb
        b.add(
            r,
            Op.ATTENTION,
            phase,
            cnt,
            m=tok,
            n=tok,
            k=hd,
            gemm_group=bh,
            flops=4.0 * bh * tok * tok * hd * (2.5 if backward else 1.0),
            fp_flops=5.0 * bh * tok * tok,
            bytes=4.0 * bh * tok * hd * abb + np.where(eag > 0, 6.0 * scores, 0.0),
            precision_bytes=abb,
        )
    elem = shapes["elementwise"]
    b.add(
        rows,
        Op.ELEMENTWISE,
        phase,
        count * gm,
        bytes=2.0 * images * elem * ab / 4.0,
        fp_flops=images * elem / 4.0,
    )


def add_cnn(b: KernelTableBuilder, p: RowParams, rows: np.ndarray, specs: list[CNNSpec]) -> np.ndarray:
    """Adds CNN kernels for ``rows`` (grouped per network); returns passes per row (for host overheads)."""
    passes_out = np.zeros(rows.size)
    groups: dict[CNNSpec, list[int]] = {}
    for j, spec in enumerate(specs):
        groups.setdefault(spec, []).append(j)
    for spec, idx_list in groups.items():
        idx = np.array(idx_list)
        r = rows[idx]
        shapes = cnn_shape_arrays(spec)
        wb, ab, eager, simt = p.w_bytes[r], p.a_bytes[r], p.eager_attention[r], p.simt_convs[r]
        train = p.training[r]
        if train.any():
            rt, it = r[train], idx[train]
            images = np.maximum(p.global_batch[rt] / p.dp[rt], 1.0)
            steps = p.steps[rt]
            for phase, backward in ((Phase.FORWARD, False), (Phase.BACKWARD, True)):
                _add_pass(
                    b,
                    rt,
                    phase,
                    steps,
                    images,
                    shapes,
                    wb[train],
                    ab[train],
                    eager[train],
                    simt[train],
                    backward,
                )
            optimizer_step(b, rt, steps, np.full(rt.size, float(shapes["params"])), p.dp[rt])
            passes_out[it] = steps
        inf = ~train
        if inf.any():
            ri, ii = r[inf], idx[inf]
            # the images in passes of at most the batch, split evenly (the last pass is not padded)
            passes = np.ceil(p.requests[ri] / p.concurrency[ri])
            images = p.requests[ri] / passes
            _add_pass(
                b, ri, Phase.PREFILL, passes, images, shapes, wb[inf], ab[inf], eager[inf], simt[inf], False
            )
            passes_out[ii] = passes
    return passes_out
