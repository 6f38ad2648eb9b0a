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
