"""Fixed device latency per kernel launch: counted once per launch, not per byte; idle SMs while it
passes; hidden behind eager dispatch when the host is the slower, paid in full in CUDA-graph replays."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.profile import CalibrationProfile, load_profile
from energaizer.timing.kernel_time import DRAM_LATENCY_NS, kernel_timing


def _stream(sizes: list[float], comm: bool = False, eager: bool = False):
    b = KernelTableBuilder()
    for i, nbytes in enumerate(sizes):
        if comm:
            b.add(np.array([i]), Op.TP_ALLREDUCE, Phase.PREFILL, 1.0, comm_bytes=nbytes, precision_bytes=2.0)
        else:
            b.add(
                np.array([i]),
                Op.ELEMENTWISE,
                Phase.PREFILL,
                1.0,
                bytes=nbytes,
                precision_bytes=2.0,
                eager=eager,
            )
    return b.build()


def _times(
    prof: CalibrationProfile,
    sizes: list[float],
    device,
    gpu: str = "h100-sxm",
    comm: bool = False,
    eager: bool = False,
):
    hw, dev1 = device(gpu, "bf16")
    kt = _stream(sizes, comm, eager)
    dev = dev1.subset(np.zeros(len(sizes), dtype=np.int64))
    return kernel_timing(kt, dev, np.full(len(sizes), hw.max_clock_mhz[0]), hw, prof), hw


@pytest.mark.parametrize("gpu", ["h100-sxm", "a100-pcie-40gb", "a10"])
def test_streaming_kernel_is_latency_plus_bytes_at_the_streaming_rate(gpu, device):
    """A copy's time is a fixed part (latency + one wave) plus its bytes at the streaming rate: the slope
    over size is the streaming rate alone, the intercept the latency alone."""
    prof = CalibrationProfile(fused_dram_efficiency=0.9, kernel_latency_us=1.5, wave_overhead_cycles=1000.0)
    sizes = [1e6, 1e8, 1e9]
    tm, hw = _times(prof, sizes, device, gpu)
    bw = hw.dram_bytes_per_s[0] * 0.9
    fixed = 1.5e-6 + 1000.0 / (hw.max_clock_mhz[0] * 1e6)
    for nbytes, t in zip(sizes, tm.t_exec, strict=True):
        assert t == pytest.approx(fixed + nbytes / bw, rel=1e-9)
    assert (tm.t_exec[2] - tm.t_exec[1]) == pytest.approx((sizes[2] - sizes[1]) / bw, rel=1e-9)


def test_latency_counts_once_per_launch_and_not_for_collectives(device):
    sizes = [1e3, 1e9]
    without, _ = _times(CalibrationProfile(kernel_latency_us=0.0), sizes, device)
    with_, _ = _times(CalibrationProfile(kernel_latency_us=4.0), sizes, device)
    np.testing.assert_allclose(with_.t_exec - without.t_exec, 4e-6, rtol=1e-6)
    # collectives carry their own latency (comm_latency_us)
    c0, _ = _times(CalibrationProfile(kernel_latency_us=0.0), sizes, device, comm=True)
    c4, _ = _times(CalibrationProfile(kernel_latency_us=4.0), sizes, device, comm=True)
    np.testing.assert_array_equal(c0.t_exec, c4.t_exec)


def test_sms_are_not_busy_while_the_latency_passes(device):
    """A tiny kernel is mostly latency: its SM activity (and so its power over idle) is small; a large
    streaming kernel keeps its SMs busy."""
    tm, _ = _times(CalibrationProfile(kernel_latency_us=1.3), [6.4e4, 1e9], device)
    assert tm.u_busy[0] == pytest.approx(1.0 - 1.3e-6 / tm.t_exec[0], rel=1e-9)
    assert tm.u_busy[0] < 0.5
    assert tm.u_busy[1] > 0.99
    none, _ = _times(CalibrationProfile(kernel_latency_us=0.0), [6.4e4], device)
    assert none.u_busy[0] == pytest.approx(1.0)


def test_latency_hides_behind_slow_eager_dispatch_but_not_in_graph_replays(one, prefill, serving):
    """Batch-1 GPT-2 prefill in eager PyTorch is host-bound: each kernel's device latency passes while
    the GPU would wait for the next dispatch anyway, so it costs no time. Decode replayed from CUDA
    graphs pays it for every launch of every step."""
    slow_host = {"launch_overhead_us": 20.0, "pass_overhead_ms": 0.0}
    fast = one(prefill(), "h100-sxm", CalibrationProfile(kernel_latency_us=0.0, **slow_host))
    slow = one(prefill(), "h100-sxm", CalibrationProfile(kernel_latency_us=3.0, **slow_host))
    assert slow.duration_seconds == pytest.approx(fast.duration_seconds, rel=1e-9)
    # ... unless the code synchronises host and GPU every layer (HF GPT-NeoX): then it is serial
    sync = {"model": "pythia-12b"}
    s0 = one(prefill(**sync), "h100-sxm", CalibrationProfile(kernel_latency_us=0.0, **slow_host))
    s3 = one(prefill(**sync), "h100-sxm", CalibrationProfile(kernel_latency_us=3.0, **slow_host))
    serial = s3.kernel_launches * 3e-6  # ~5 % of the run; the idle SMs of the latency let a capped kernel
    # clock a little higher, hence not exact
    assert s3.duration_seconds - s0.duration_seconds == pytest.approx(serial, rel=0.02)
    w = serving("llama-3.1-8b", 8, execution="graphs")
    g0 = one(w, "h100-sxm", CalibrationProfile(kernel_latency_us=0.0))
    g3 = one(w, "h100-sxm", CalibrationProfile(kernel_latency_us=3.0))
    assert g3.duration_seconds > g0.duration_seconds + 0.5 * g3.kernel_launches * 3e-6


SWEEP = (
    Path(__file__).resolve().parents[2]
    / "benchmarks"
    / "results"
    / "h100-nvml-2026-11-22"
    / "sweep"
    / "sweep.csv"
)


def test_shipped_fixed_time_per_launch_matches_the_h100_add_sweep(device):
    """The H100 bf16 adds of 0.2-3.2 GB replayed from CUDA graphs take a fixed time plus their bytes at a
    constant rate: the shipped profile's fixed part (latency + one wave) is that intercept (1.82 us)."""
    with SWEEP.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kernel"].startswith("add_")]
    big = [r for r in rows if float(r["min_dram_bytes_per_call"]) > 1.5e8]
    nbytes = np.array([float(r["min_dram_bytes_per_call"]) for r in big])
    secs = np.array([float(r["time_per_call_us"]) * 1e-6 for r in big])
    _, measured_fixed = np.polyfit(nbytes, secs, 1)
    prof = load_profile(None)
    # PyTorch's add kernel replayed from a graph: an eager kernel's bytes in flight
    tm, hw = _times(prof, [float(b) for b in nbytes], device, eager=True)
    # the streaming rate at the max clock: the DRAM share or Little's law, whichever binds
    in_flight = hw.sm_count[0] * hw.l1_kb[0] * prof.in_flight_bytes_per_l1_kb
    period = DRAM_LATENCY_NS * 1e-9 + prof.core_latency_cycles / (hw.max_clock_mhz[0] * 1e6)
    bw = min(hw.dram_bytes_per_s[0] * prof.dram_efficiency, in_flight / period)
    predicted_fixed = tm.t_exec - nbytes / bw
    np.testing.assert_allclose(predicted_fixed, predicted_fixed[0], rtol=1e-6)
    assert predicted_fixed[0] == pytest.approx(measured_fixed, rel=0.3)
