"""Properties that must hold if the physics is right (these fail when the model breaks)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice, kernel_timing


def serve(**kw) -> Workload:
    inf = {"requests": 200, "input_tokens": 512, "output_tokens": 128, "batch_size": 16}
    inf.update(kw.pop("inference", {}))
    return Workload(model=kw.pop("model", "llama-3.1-8b"), inference=inf, **kw)


def one(w: Workload, gpu: str):
    (e,) = estimate(w, gpu)
    return e


def test_more_tokens_cost_more_energy():
    small = one(serve(inference={"output_tokens": 64}), "h100-sxm")
    big = one(serve(inference={"output_tokens": 256}), "h100-sxm")
    more_req = one(serve(inference={"requests": 800, "output_tokens": 64}), "h100-sxm")
    assert big.energy_joules > small.energy_joules
    assert more_req.energy_joules > small.energy_joules
    assert big.duration_seconds > small.duration_seconds


def test_lower_power_limit_lowers_power_and_never_shortens_time():
    w = Workload(
        model="qwen2-1.5b",
        task="training",
        training={"steps": 20, "global_batch_size": 32, "sequence_length": 2048},
    )
    full = one(w, "h100-sxm")
    capped = one(w.model_copy(update={"power_limit_w": 350.0}), "h100-sxm")
    assert capped.average_power_watts < full.average_power_watts
    assert capped.average_power_watts <= 350.0 + 1e-6
    assert capped.duration_seconds >= full.duration_seconds
    assert capped.frequency_mhz < full.frequency_mhz


def test_lower_clock_slows_compute_bound_work():
    w = Workload(
        model="qwen2-1.5b",
        task="training",
        training={"steps": 5, "global_batch_size": 16, "sequence_length": 2048},
    )
    fast = one(w.model_copy(update={"frequency_mhz": 1410.0}), "a100-sxm4-80gb")
    slow = one(w.model_copy(update={"frequency_mhz": 705.0}), "a100-sxm4-80gb")
    assert slow.duration_seconds > 1.3 * fast.duration_seconds  # compute share of time doubles
    assert slow.average_power_watts < fast.average_power_watts


def test_hand_checked_gemm_time():
    """8192^3 bf16 on A100-SXM4-80GB at 1410 MHz with ideal math efficiency and no overheads:
    4096 tiles of 128x128 over 108 SMs = 38 waves; each wave is 2*128*128*8192 FLOP per SM at 312 TF/108
    plus staging (128 + 128) x 8192 bf16 operands at 48 B per SM per clock."""
    prof = CalibrationProfile(
        compute_efficiency=1.0,
        wave_overhead_cycles=0.0,
        dram_efficiency=1.0,
        operand_feed_bytes_per_cycle=48.0,
    )
    gpu = get_gpu("a100-sxm4-80gb")
    hw = GpuTable.from_specs([gpu])
    b = KernelTableBuilder()
    n = 8192.0
    b.add(
        np.array([0]),
        Op.LINEAR,
        Phase.PREFILL,
        1.0,
        m=n,
        n=n,
        k=n,
        flops=2 * n**3,
        bytes=3 * n * n * 2,
        precision_bytes=2.0,
    )
    kt = b.build()
    dev = KernelDevice(g=np.array([0]), peak=np.array([312e12]), tensor=np.array([True]))
    t = kernel_timing(kt, dev, np.array([1410.0]), hw, prof).t_exec[0]
    math = 2 * 128 * 128 * n / (312e12 / 108)  # 92.9 us
    staging = (128 + 128) * n * 2 / (48 * 1410e6)  # 62.0 us
    expected = 38 * (math + staging)
    assert t == pytest.approx(expected, rel=1e-9)
    assert 38 * math == pytest.approx(3.531e-3, rel=1e-3)  # vs 3.524 ms ideal: 1.6 % wave quantisation
    assert expected == pytest.approx(5.886e-3, rel=1e-3)


def test_fp8_faster_than_bf16_on_hopper_for_compute_bound_prefill():
    w = Workload(
        model="llama-3.1-70b",
        gpu_count=4,
        attention="flash",  # fused attention: GEMM-bound (eager scores would be memory-bound)
        inference={"requests": 64, "input_tokens": 4096, "output_tokens": 0, "batch_size": 16},
    )
    bf16 = one(w, "h100-sxm")
    fp8 = one(w.model_copy(update={"precision": "fp8"}), "h100-sxm")
    assert fp8.duration_seconds < 0.8 * bf16.duration_seconds
    # A100 has no fp8: the same request runs at 16-bit speed there.
    a_bf16 = one(w, "a100-sxm4-80gb")
    a_fp8 = one(w.model_copy(update={"precision": "fp8"}), "a100-sxm4-80gb")
    assert a_fp8.duration_seconds == pytest.approx(a_bf16.duration_seconds, rel=0.15)


def test_model_that_does_not_fit_is_infeasible_with_reason():
    e = one(serve(model="llama-3.1-405b"), "l4")
    assert not e.feasible
    assert "does not fit" in e.reason and "l4" in e.reason
    ok = one(serve(model="llama-3.1-405b", gpu_count=8, precision="fp8"), "h200")
    assert ok.feasible and ok.reason == ""


def test_multi_gpu_reports_whole_workload_energy_and_communication():
    w1 = serve(model="llama-3.1-70b", gpu_count=4)
    e = one(w1, "h100-sxm")
    assert e.breakdown["communication"] > 0
    assert e.average_power_watts > get_gpu("h100-sxm").idle_power_w * 4
    assert math.isclose(sum(e.breakdown.values()), e.energy_joules, rel_tol=1e-9)


def test_breakdown_sums_and_epot():
    e = one(serve(), "a100-sxm4-80gb")
    assert set(e.breakdown) >= {"static", "compute", "memory", "communication", "overhead"}
    assert sum(e.breakdown.values()) == pytest.approx(e.energy_joules)
    assert e.energy_per_output_token_joules == pytest.approx(e.energy_joules / (200 * 128))
    assert e.average_power_watts <= get_gpu("a100-sxm4-80gb").power_limit_default_w + 1e-6


def test_prefill_only_and_training_have_no_per_token_figure():
    enc = one(
        Workload(
            model="bert-large",
            inference={"requests": 64, "input_tokens": 128, "output_tokens": 0, "batch_size": 32},
        ),
        "a10",
    )
    assert enc.energy_per_output_token_joules is None
    tr = one(
        Workload(
            model="gpt2",
            task="training",
            training={"tokens": 1e7, "sequence_length": 1024, "global_batch_size": 8},
        ),
        "a10",
    )
    assert tr.energy_per_output_token_joules is None and tr.energy_joules > 0


def test_moe_cheaper_than_dense_of_same_total_size():
    moe = one(serve(model="mixtral-8x7b", gpu_count=2), "h100-sxm")
    dense = one(serve(model="llama-3.1-70b", gpu_count=2), "h100-sxm")
    assert moe.energy_joules < dense.energy_joules


def test_cnn_forward_scales_with_images():
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


def test_out_of_range_knobs_are_rejected():
    from energaizer.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="frequency_mhz"):
        one(serve(frequency_mhz=4000.0), "h100-sxm")
    with pytest.raises(InvalidInputError, match="power_limit_w"):
        one(serve(power_limit_w=5.0), "h100-sxm")


def test_fast_json_rows_match_pydantic_dump():
    from energaizer import estimate_matrix

    batch = estimate_matrix([serve(), serve(model="llama-3.1-405b")], ["h100-sxm", "l4"])
    slow = [e.model_dump() for e in batch.to_estimates()]
    fast = batch.to_dicts(ops=True)
    for a, b in zip(slow, fast, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and a[k] != a[k]:
                assert b[k] is None
            elif k not in ("breakdown", "time_breakdown") or all(x == x for x in a[k].values()):
                assert a[k] == b[k], k
