"""fp32 convolutions on GPUs without TF32 tensor cores run 3x3 stride-1 layers as Winograd F(4x4, 3x3)
(cuDNN's choice under ``cudnn.benchmark``): 4x fewer multiply-adds plus tile transforms."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload
from energaizer.catalog import get_gpu, get_model
from energaizer.kernels.cnn import add_winograd
from energaizer.kernels.ops import Kind, Op, Phase
from energaizer.kernels.params import build_row_params
from energaizer.kernels.table import KernelTableBuilder


def test_winograd_kernels_hand_checked():
    """A 56x56, 64 -> 64 channel 3x3 conv on 32 images: direct = 2 x 100352 x 64 x 576 FLOPs;
    Winograd = 36 GEMMs of (100352 / 16) x 64 x 64 (4x fewer) between two transform passes."""
    b = KernelTableBuilder()
    m, c = 32 * 56 * 56.0, 64.0
    act = m * c * 4.0  # fp32 input (= output) bytes
    add_winograd(
        b,
        np.array([0]),
        Phase.FORWARD,
        np.array([1.0]),
        np.array([m]),
        np.array([c]),
        np.array([c]),
        np.array([4.0]),
        np.array([4.0]),
    )
    kt = b.build()
    assert list(kt.kind) == [Kind.MEMORY, Kind.GEMM, Kind.MEMORY]
    assert list(kt.op) == [Op.WINOGRAD_TRANSFORM, Op.CONV, Op.WINOGRAD_TRANSFORM]
    gemm = kt.kind == Kind.GEMM
    assert kt.gemm_group[gemm][0] == 36
    assert (kt.m[gemm][0], kt.n[gemm][0], kt.k[gemm][0]) == (m / 16, c, c)
    assert kt.flops[gemm][0] == pytest.approx(2 * m * c * 9 * c / 4)
    # transforms: read the tensor once, write/read its 2.25x transformed copy; the GEMMs read the transformed
    # input and the 36/9 x transformed filters and write the transformed output
    assert kt.bytes[0] == pytest.approx(3.25 * act)
    assert kt.bytes[2] == pytest.approx(3.25 * act)
    assert kt.bytes[gemm][0] == pytest.approx(2.25 * act + 4 * c * c * 9 * 4.0 + 2.25 * act)


@pytest.mark.parametrize(
    ("gpu", "precision", "winograd"),
    [
        ("v100-sxm2-32gb", "fp32", True),
        ("t4", "fp32", True),
        ("a100-pcie-40gb", "fp32", False),
        ("v100-sxm2-32gb", "fp16", False),
        ("h100-sxm", "fp32", False),
    ],
)
def test_only_simt_fp32_convs_use_winograd(gpu, precision, winograd):
    w = Workload.model_validate(
        {
            "model": "resnet-50",
            "task": "training",
            "precision": precision,
            "training": {"steps": 10, "global_batch_size": 64},
        }
    )
    p = build_row_params([w], [get_gpu(gpu)], [get_model("resnet-50")])
    assert bool(p.simt_convs[0]) is winograd


def test_winograd_cuts_resnet50_gemm_flops_on_the_v100(cnn_table):
    """ResNet-50's 3x3 stride-1 convs are 37 % of its conv FLOPs (the stride-2 3x3s, the 7x7 stem and the
    1x1s stay direct); Winograd does them with a quarter of the multiply-adds, so the V100 fp32 kernel
    table carries 1 - 0.75 x 0.37 = 72 % of the direct GEMM FLOPs."""
    from energaizer.kernels.cnn import cnn_shape_arrays

    flops = {}
    for gpu in ("v100-sxm2-32gb", "a100-pcie-40gb"):
        arch, kt = cnn_table("resnet-50", "fp32", "training", 64, gpu)
        flops[gpu] = float((kt.flops * kt.count)[kt.kind == Kind.GEMM].sum())
    cin, cout, k, stride, groups, h, w_out = cnn_shape_arrays(arch.cnn)["conv"].T
    conv_flops = 2 * cin / groups * cout * k * k * h * w_out
    share = conv_flops[(k == 3) & (stride == 1) & (groups == 1)].sum() / conv_flops.sum()
    assert share == pytest.approx(0.37, abs=0.01)
    assert flops["v100-sxm2-32gb"] / flops["a100-pcie-40gb"] == pytest.approx(1 - 0.75 * share, rel=0.01)
