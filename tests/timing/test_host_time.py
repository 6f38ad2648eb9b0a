"""Host time: eager dispatch vs serving engine, dispatch/GPU overlap, legacy-engine workers."""

from __future__ import annotations

import math

import pytest

from energaizer import Workload
from energaizer.catalog import get_model
from energaizer.profile import CalibrationProfile


def llama_batch(batch: int, **kw) -> Workload:
    inf = {"requests": 8 * batch, "input_tokens": 256, "output_tokens": 256, "batch_size": batch}
    return Workload(model="llama-3.1-8b", inference=inf, **kw)


def _generate(arch) -> Workload:
    return Workload(
        architecture=arch,
        precision="fp16",
        inference={"requests": 1, "batch_size": 1, "input_tokens": 150, "output_tokens": 200},
        execution="eager",  # HF generate()
    )


def test_tiny_eager_pass_is_dispatch_bound(one, prefill):
    """A small model at batch 1 is host-bound: time ~ launches x dispatch cost, GPU mostly idle."""
    prof = CalibrationProfile(launch_overhead_us=20.0, pass_overhead_ms=0.0)
    e = one(prefill(), "a100-pcie-40gb", prof)
    launches = e.kernel_launches
    assert e.duration_seconds == pytest.approx(launches * 20e-6, rel=0.05)
    assert e.time_breakdown["overhead"] > 0.5 * e.duration_seconds
    # doubling the dispatch cost doubles the time of a dispatch-bound pass
    slow = one(prefill(), "a100-pcie-40gb", prof.model_copy(update={"launch_overhead_us": 40.0}))
    assert slow.duration_seconds == pytest.approx(2 * e.duration_seconds, rel=0.05)


def test_large_eager_pass_hides_dispatch_behind_gpu_work(one, prefill):
    big = prefill(inference={"input_tokens": 1024, "batch_size": 32, "requests": 32})

    def run(us: float, loss: float):
        prof = CalibrationProfile(launch_overhead_us=us, pass_overhead_ms=0.0, dispatch_overlap_loss=loss)
        return one(big, "a100-pcie-40gb", prof)

    assert run(20.0, 0.0).duration_seconds == pytest.approx(run(1.0, 0.0).duration_seconds, rel=1e-9)
    # with imperfect overlap the stated share of the dispatch time shows through
    fast, slow = run(1.0, 0.25), run(20.0, 0.25)
    assert slow.duration_seconds - fast.duration_seconds == pytest.approx(0.25 * slow.kernel_launches * 19e-6)


def test_legacy_engine_host_time_grows_with_batch_and_lowers_power(one):
    modern = one(llama_batch(256), "h100-sxm")
    legacy = one(llama_batch(256, execution="legacy-engine"), "h100-sxm")
    assert legacy.duration_seconds > 2 * modern.duration_seconds
    assert legacy.average_power_watts < modern.average_power_watts
    small_gap = (
        one(llama_batch(8, execution="legacy-engine"), "h100-sxm").duration_seconds
        / one(llama_batch(8), "h100-sxm").duration_seconds
    )
    assert small_gap < legacy.duration_seconds / modern.duration_seconds


def test_code_that_syncs_every_layer_serialises_dispatch_and_gpu_work(one):
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


def test_dispatch_overlap_loss_lengthens_eager_runs_between_its_bounds(one):
    w = Workload(
        model="bert-large",
        inference={"requests": 16, "batch_size": 16, "input_tokens": 128},
        attention="eager",
        execution="eager",
    )
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


def test_legacy_engine_pays_per_extra_tensor_parallel_worker(one, serving):
    prof = CalibrationProfile(legacy_worker_overhead_ms=5.0)
    w2 = serving("llama-3.1-70b", 64, gpus=2, execution="legacy-engine", precision="fp8")
    w8 = serving("llama-3.1-70b", 64, gpus=8, execution="legacy-engine", precision="fp8")
    # engine steps: the decode steps, plus a prefill step after each decode step in which a sequence
    # finished (64 running, 512 tokens each: a share 1 - exp(-64 / 512) of them)
    decode_steps = w2.inference.requests * 512 / 64
    steps = decode_steps * (1.0 + -math.expm1(-64 / 512))
    g2 = one(w2, "h100-sxm", prof).time_breakdown["overhead"] / steps
    g8 = one(w8, "h100-sxm", prof).time_breakdown["overhead"] / steps
    assert g8 - g2 == pytest.approx(6 * 5e-3, rel=0.02)
    # a current engine does not
    c2 = serving("llama-3.1-70b", 64, gpus=2, execution="graphs", precision="fp8")
    c8 = serving("llama-3.1-70b", 64, gpus=8, execution="graphs", precision="fp8")
    assert one(c2, "h100-sxm", prof).time_breakdown["overhead"] == pytest.approx(
        one(c8, "h100-sxm", prof).time_breakdown["overhead"], rel=1e-6
    )


def test_legacy_engine_runs_prefills_as_steps_of_their_own(one, serving):
    """vLLM 0.5 never mixes prefills into decode steps: with requests queued, every decode step in which
    a running sequence finished is followed by a prefill step with its own host cost. Short outputs at
    a large batch finish sequences almost every step (nearly twice the steps); long ones at a small
    batch seldom."""
    prof = CalibrationProfile(
        legacy_decode_step_overhead_ms=10.0, legacy_decode_seq_overhead_us=0.0, legacy_worker_overhead_ms=0.0
    )

    def host_per_decode_step(batch: int, output_tokens: int) -> float:
        w = serving("llama-3.1-8b", batch, execution="legacy-engine")
        w = w.model_copy(
            update={"inference": w.inference.model_copy(update={"output_tokens": output_tokens})}
        )
        decode_steps = w.inference.requests * output_tokens / batch
        return one(w, "a100-sxm4-40gb", prof).time_breakdown["overhead"] / decode_steps

    assert host_per_decode_step(256, 64) == pytest.approx(10e-3 * (2.0 - math.exp(-4.0)), rel=1e-6)
    assert host_per_decode_step(16, 512) == pytest.approx(10e-3 * (2.0 - math.exp(-16 / 512)), rel=1e-6)

    # prefill-only serving: one step per admitted batch of running requests
    w = serving("llama-3.1-8b", 16, execution="legacy-engine")
    w = w.model_copy(update={"inference": w.inference.model_copy(update={"output_tokens": 0})})
    steps = w.inference.requests / 16
    overhead = one(w, "a100-sxm4-40gb", prof).time_breakdown["overhead"]
    assert overhead == pytest.approx(steps * 10e-3, rel=1e-6)
