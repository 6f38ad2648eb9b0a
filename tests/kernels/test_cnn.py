"""CNN kernels: images per pass, TF32 convolutions, NCHW layout copies, batch-norm statistics."""

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


def test_the_last_pass_of_images_is_not_padded(one):
    """320 images at up to 256 a pass are two passes of 160, not two of 256: the work of 320 images."""
    inf = {"input_tokens": 1, "output_tokens": 0, "batch_size": 256}
    odd = one(Workload(model="resnet-50", inference={**inf, "requests": 320}), "a100-sxm4-80gb")
    even = one(Workload(model="resnet-50", inference={**inf, "requests": 512}), "a100-sxm4-80gb")
    assert odd.kernel_launches == even.kernel_launches
    assert odd.energy_joules == pytest.approx(320 / 512 * even.energy_joules, rel=0.05)


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


def test_16_bit_convolutions_on_nchw_tensors_pay_layout_transposes(cnn_table):
    """cuDNN runs 16-bit tensor-core convolutions as NHWC kernels; PyTorch's tensors are NCHW, so every
    GEMM pass copies its activation operand (nchwToNhwcKernel in the H100 profile of ResNet-50 bf16): the
    forward pass reads and writes each conv input once more, the backward pass each input and output
    gradient. fp32 convolutions run native NCHW kernels (FFMA, or TF32 with NCHW outputs) and copy nothing."""
    from energaizer.kernels.cnn import cnn_shape_arrays
    from energaizer.kernels.ops import OP_KIND, Kind, Op, Phase

    assert OP_KIND[Op.LAYOUT_TRANSPOSE] == Kind.MEMORY
    arch, kt = cnn_table("resnet-50", "bf16", "inference", 256)
    cin, cout, _k, stride, _groups, h, w = cnn_shape_arrays(arch.cnn)["conv"].T
    inputs = (cin * h * stride * w * stride).sum() * 256 * 2.0  # bytes of every conv input, bf16
    outputs = (cout * h * w).sum() * 256 * 2.0
    sel = kt.op == Op.LAYOUT_TRANSPOSE
    assert sel.sum() == 53  # one per convolution (ResNet-50 has no depthwise or Winograd layer)
    assert (kt.count * kt.bytes)[sel].sum() == pytest.approx(2.0 * inputs)

    _, train = cnn_table("resnet-50", "bf16", "training", 128)
    moved = (train.count * train.bytes)[train.op == Op.LAYOUT_TRANSPOSE]
    fwd = train.phase[train.op == Op.LAYOUT_TRANSPOSE] == Phase.FORWARD
    assert moved[fwd].sum() == pytest.approx(2.0 * inputs / 2)
    assert moved[~fwd].sum() == pytest.approx(2.0 * (inputs + outputs) / 2)

    _, fp32 = cnn_table("resnet-50", "fp32", "inference", 256)
    assert not (fp32.op == Op.LAYOUT_TRANSPOSE).any()


def test_training_batch_norm_reads_its_input_once_more_for_the_batch_statistics(cnn_table):
    """Training-mode batch norm first reduces its input to the batch mean and variance, then normalises:
    the forward pass's batch-norm + activation kernels move 5 activation passes, inference's 4."""
    from energaizer.kernels.cnn import cnn_shape_arrays
    from energaizer.kernels.ops import Op, Phase

    arch, inf = cnn_table("resnet-50", "bf16", "inference", 128)
    _, train = cnn_table("resnet-50", "bf16", "training", 128)
    _cin, cout, _k, _stride, _groups, h, w = cnn_shape_arrays(arch.cnn)["conv"].T
    acts = (cout * h * w).sum() * 128 * 2.0
    head = 2 * 4.0 * 128 * 1000 * 2.0  # the classifier's bias + activation kernels (2 x 4 passes of 1000)

    def norm_bytes(kt, phase):
        sel = (kt.op == Op.NORM_ACT) & (kt.phase == phase)
        gm = 2.0 if phase == Phase.BACKWARD else 1.0
        return (kt.count * kt.bytes)[sel].sum() - gm * head

    assert norm_bytes(inf, Phase.PREFILL) == pytest.approx(4.0 * acts)
    assert norm_bytes(train, Phase.FORWARD) == pytest.approx(5.0 * acts)
    assert norm_bytes(train, Phase.BACKWARD) == pytest.approx(8.0 * acts)
