"""CNN kernels: images per pass, TF32 convolutions."""

from __future__ import annotations

import pytest

from energaizer import Workload


def test_cnn_forward_scales_with_images(one):
    w = Workload(
        model="resnet-50",
        inference={"requests": 256, "input_tokens": 1, "output_tokens": 0, "batch_size": 64},
    )
    a = one(w, "a100-sxm4-80gb")
    b = one(
        w.model_copy(update={"inference": w.inference.model_copy(update={"requests": 1024})}),
        "a100-sxm4-80gb",
    )
    assert b.energy_joules == pytest.approx(4 * a.energy_joules, rel=0.05)


def test_fp32_convolutions_use_tf32_tensor_cores_where_available(one, prefill):
    """cuDNN allows TF32 for fp32 convolutions by default: ResNet fp32 is close to bf16 on A100, not 8x slower."""
    w = prefill(model="resnet-101", inference={"input_tokens": 1, "batch_size": 64, "requests": 64})
    fp32 = one(w.model_copy(update={"precision": "fp32"}), "a100-pcie-40gb")
    bf16 = one(w, "a100-pcie-40gb")
    assert fp32.duration_seconds < 3.0 * bf16.duration_seconds
    # V100 has no TF32: fp32 convolutions run on CUDA cores there.
    v_fp32 = one(w.model_copy(update={"precision": "fp32"}), "v100-sxm2-32gb")
    v_fp16 = one(w.model_copy(update={"precision": "fp16"}), "v100-sxm2-32gb")
    assert v_fp32.duration_seconds > 2.0 * v_fp16.duration_seconds


def test_depthwise_convolutions_are_memory_bound_direct_kernels():
    """A depthwise convolution (one 3x3 filter per channel) is a direct CUDA-core kernel that streams its
    input and output once; as an implicit GEMM with N = 1 it padded a 64-wide tensor-core tile per channel
    and took MobileViT-S 1.3-1.6x its measured time (EnergAIzer artifact, A10 and A100)."""
    from energaizer.estimator import estimate_pairs
    from energaizer.kernels.ops import OP_KIND, Kind, Op

    assert OP_KIND[Op.DEPTHWISE_CONV] == Kind.MEMORY
    w = Workload(
        model="mobilevit-small",
        inference={"requests": 64, "input_tokens": 1, "output_tokens": 0, "batch_size": 32},
        attention="eager",
        execution="eager",
    )
    r = estimate_pairs([w], ["a100-pcie-40gb"])
    seconds = dict(zip(r.ops.names, r.ops.duration_seconds[0], strict=True))
    assert seconds["depthwise_conv"] > 0
    # it moves what one batch-norm pass over its output moves, not a GEMM's padded tiles
    assert seconds["depthwise_conv"] < seconds["norm_act"]
    assert seconds["depthwise_conv"] < 0.15 * r.duration_seconds[0]
