"""How the reference (Hugging Face eager) code runs: the kernels eager attention launches on the score
matrix, per architecture, and host/GPU overlap (partial, or none where the code syncs every layer)."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_model
from energaizer.kernels.transformer import eager_score_traffic
from energaizer.profile import CalibrationProfile


def one(w: Workload, gpu: str, profile: CalibrationProfile | None = None):
    (e,) = estimate(w, gpu, profile=profile)
    return e


@pytest.mark.parametrize(
    ("prep", "fp32_softmax", "act_bytes", "kernels", "bytes_per_score"),
    [
        # Llama/Qwen2 bf16: scale (2+2), mask add (2+2), cast up (2+4), fp32 softmax (4+4), cast back (4+2)
        (2, True, 2.0, 5, 28.0),
        # BERT bf16: divide (2+2), mask add (2+2), softmax in bf16 (2+2)
        (2, False, 2.0, 3, 12.0),
        # OPT bf16 scales q, not the scores: mask add, then the three fp32-softmax kernels
        (1, True, 2.0, 4, 24.0),
        # fp32 models need no casts: OPT fp32 is a mask add and a softmax
        (1, True, 4.0, 2, 16.0),
    ],
)
def test_eager_score_traffic_hand_checked(prep, fp32_softmax, act_bytes, kernels, bytes_per_score):
    k, per_element = eager_score_traffic(
        np.array([float(prep)]), np.array([float(fp32_softmax)]), np.array([act_bytes])
    )
    assert k[0] == kernels
    assert per_element[0] == pytest.approx(bytes_per_score)


def test_catalog_follows_the_reference_code():
    assert not get_model("bert-large").eager_softmax_fp32
    assert not get_model("gpt2").eager_softmax_fp32
    assert get_model("qwen2-1.5b").eager_softmax_fp32
    assert get_model("opt-1.3b").eager_score_kernels == 1
    assert get_model("vit-large").eager_score_kernels == 1
    assert get_model("pythia-12b").eager_host_syncs
    assert not get_model("llama-3.1-8b").eager_host_syncs


def test_fp32_softmax_costs_bert_more_kernels_and_time():
    arch = get_model("bert-large")
    upcast = arch.model_copy(update={"eager_softmax_fp32": True})
    inf = {"requests": 32, "batch_size": 32, "input_tokens": 512, "output_tokens": 0}
    base = one(Workload(architecture=arch, inference=inf), "a100-pcie-40gb")
    more = one(Workload(architecture=upcast, inference=inf), "a100-pcie-40gb")
    assert more.kernel_launches - base.kernel_launches == 2 * arch.layers
    assert more.duration_seconds > base.duration_seconds * 1.05


def _generate(arch) -> Workload:
    return Workload(
        architecture=arch,
        precision="fp16",
        inference={"requests": 1, "batch_size": 1, "input_tokens": 150, "output_tokens": 200},
    )


def test_code_that_syncs_every_layer_serialises_dispatch_and_gpu_work():
    """Batch-1 generate of an HF GPT-NeoX model: the per-layer host sync adds the whole dispatch time
    (launches x dispatch cost) to the GPU time, so the run is longer and draws less power on average."""
    prof = CalibrationProfile(launch_overhead_us=20.0, dispatch_overlap_loss=0.0)
    sync = get_model("pythia-12b")
    free = sync.model_copy(update={"eager_host_syncs": False})
    s = one(_generate(sync), "a100-sxm4-40gb", prof)
    f = one(_generate(free), "a100-sxm4-40gb", prof)
    dispatch = s.kernel_launches * 20e-6
    passes_and_steps = 1 + 200  # generate(): the prompt pass, then one pass per new token
    assert s.time_breakdown["overhead"] == pytest.approx(
        dispatch + passes_and_steps * prof.pass_overhead_ms * 1e-3
    )
    assert f.duration_seconds < s.duration_seconds <= f.duration_seconds + dispatch * (1 + 1e-9)
    assert s.average_power_watts < f.average_power_watts
    # a serving engine replays CUDA graphs (no host sync can be captured): no difference there
    batched = {"requests": 64, "batch_size": 32, "input_tokens": 150, "output_tokens": 200}
    gs = one(Workload(architecture=sync, precision="fp16", inference=batched), "a100-sxm4-40gb", prof)
    gf = one(Workload(architecture=free, precision="fp16", inference=batched), "a100-sxm4-40gb", prof)
    assert gs.duration_seconds == pytest.approx(gf.duration_seconds)


def test_dispatch_overlap_loss_lengthens_eager_runs_between_its_bounds():
    w = Workload(model="bert-large", inference={"requests": 16, "batch_size": 16, "input_tokens": 128})
    t = [
        one(w, "a100-pcie-40gb", CalibrationProfile(launch_overhead_us=20.0, dispatch_overlap_loss=x))
        for x in (0.0, 0.5, 1.0)
    ]
    assert t[0].duration_seconds < t[1].duration_seconds < t[2].duration_seconds
    # loss 1 is full serialisation: GPU time plus every launch's dispatch (plus the per-pass gap)
    gpu = t[2].duration_seconds - t[2].time_breakdown["overhead"]
    pass_gap = CalibrationProfile().pass_overhead_ms * 1e-3
    assert t[2].time_breakdown["overhead"] == pytest.approx(t[2].kernel_launches * 20e-6 + pass_gap)
    assert t[0].duration_seconds == pytest.approx(max(gpu, t[2].kernel_launches * 20e-6) + pass_gap)


def _simt_gemm(gpu: str, prof: CalibrationProfile):
    """One large fp32 (CUDA-core) GEMM at the clock its peak is quoted at: (seconds, FP32 activity)."""
    from energaizer.catalog import get_gpu
    from energaizer.hardware import GpuTable
    from energaizer.kernels.ops import Op, Phase
    from energaizer.kernels.table import KernelTableBuilder
    from energaizer.timing.kernel_time import KernelDevice, kernel_timing

    m = n = k = 8192.0
    b = KernelTableBuilder()
    b.add(
        np.array([0]),
        Op.LINEAR,
        Phase.PREFILL,
        1.0,
        m=m,
        n=n,
        k=k,
        flops=2 * m * n * k,
        bytes=12 * m * n,
        precision_bytes=4.0,
    )
    hw = GpuTable.from_specs([get_gpu(gpu)])
    peak, tensor = hw.peak(0, "fp32")
    assert not tensor
    dev = KernelDevice(g=np.zeros(1, dtype=int), peak=np.array([peak]), tensor=np.array([tensor]))
    tm = kernel_timing(b.build(), dev, np.array([hw.tensor_clock_mhz[0]]), hw, prof)  # peak is quoted there
    return float(tm.t_exec[0]), float(tm.u_fp[0]), peak


@pytest.mark.parametrize(
    ("gpu", "issue_bound"),
    [("a100-pcie-40gb", False), ("v100-sxm2-32gb", False), ("a10", True), ("h100-sxm", True), ("l40s", True)],
)
def test_simt_gemm_on_128_lane_sms_is_issue_bound(gpu, issue_bound):
    """SMs with 128 FP32 lanes (GA10x, Ada, Hopper) reach only the FFMA share of the issue slots in a
    SIMT GEMM (H100 sgemm measured at 0.78 of its datasheet peak); 64-lane SMs keep full rate. The
    SM stays fully busy either way, so the FP32 activity (and power) does not drop with the rate."""
    prof = CalibrationProfile(simt_efficiency=0.95, simt_issue_share=0.7, wave_overhead_cycles=0.0)
    t, u_fp, peak = _simt_gemm(gpu, prof)
    rate = 2 * 8192.0**3 / t / peak
    assert rate == pytest.approx(0.95 * (0.7 if issue_bound else 1.0), rel=0.03)
    assert u_fp == pytest.approx(0.95, rel=0.03)
