"""Host-side execution (eager dispatch vs serving engine) and implementation choices (attention, TF32)."""

from __future__ import annotations

import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_model
from energaizer.kernels.params import execution_style
from energaizer.profile import CalibrationProfile


def one(w: Workload, gpu: str, profile: CalibrationProfile | None = None):
    (e,) = estimate(w, gpu, profile=profile)
    return e


def prefill(**kw) -> Workload:
    inf = {"requests": 1, "input_tokens": 128, "output_tokens": 0, "batch_size": 1}
    inf.update(kw.pop("inference", {}))
    return Workload(model=kw.pop("model", "gpt2"), inference=inf, **kw)


def serve(batch: int, **kw) -> Workload:
    inf = {"requests": 8 * batch, "input_tokens": 256, "output_tokens": 256, "batch_size": batch}
    return Workload(model="llama-3.1-8b", inference=inf, **kw)


@pytest.mark.parametrize(
    ("inference", "expected"),
    [
        ({"output_tokens": 0, "batch_size": 8, "requests": 8}, ("eager", "eager")),
        ({"output_tokens": 64, "batch_size": 1, "requests": 4}, ("flash", "eager")),
        ({"output_tokens": 64, "batch_size": 32, "requests": 64}, ("flash", "graphs")),
    ],
)
def test_auto_resolves_to_the_usual_software_stack(inference, expected):
    w = Workload(model="llama-3.1-8b", inference=inference)
    assert execution_style(w, get_model("llama-3.1-8b")) == expected


def test_explicit_choices_override_auto():
    w = Workload(model="llama-3.1-8b", attention="flash", execution="graphs", inference={"output_tokens": 0})
    assert execution_style(w, get_model("llama-3.1-8b")) == ("flash", "graphs")


def test_tiny_eager_pass_is_dispatch_bound():
    """A small model at batch 1 is host-bound: time ~ launches x dispatch cost, GPU mostly idle."""
    prof = CalibrationProfile(launch_overhead_us=20.0, pass_overhead_ms=0.0)
    e = one(prefill(), "a100-pcie-40gb", prof)
    launches = e.kernel_launches
    assert e.duration_seconds == pytest.approx(launches * 20e-6, rel=0.05)
    assert e.time_breakdown["overhead"] > 0.5 * e.duration_seconds
    # doubling the dispatch cost doubles the time of a dispatch-bound pass
    slow = one(prefill(), "a100-pcie-40gb", prof.model_copy(update={"launch_overhead_us": 40.0}))
    assert slow.duration_seconds == pytest.approx(2 * e.duration_seconds, rel=0.05)


def test_large_eager_pass_hides_dispatch_behind_gpu_work():
    big = prefill(inference={"input_tokens": 1024, "batch_size": 32, "requests": 32})

    def run(us: float, loss: float):
        prof = CalibrationProfile(launch_overhead_us=us, pass_overhead_ms=0.0, dispatch_overlap_loss=loss)
        return one(big, "a100-pcie-40gb", prof)

    assert run(20.0, 0.0).duration_seconds == pytest.approx(run(1.0, 0.0).duration_seconds, rel=1e-9)
    # with imperfect overlap the stated share of the dispatch time shows through
    fast, slow = run(1.0, 0.25), run(20.0, 0.25)
    assert slow.duration_seconds - fast.duration_seconds == pytest.approx(0.25 * slow.kernel_launches * 19e-6)


def test_legacy_engine_host_time_grows_with_batch_and_lowers_power():
    modern = one(serve(256), "h100-sxm")
    legacy = one(serve(256, execution="legacy-engine"), "h100-sxm")
    assert legacy.duration_seconds > 2 * modern.duration_seconds
    assert legacy.average_power_watts < modern.average_power_watts
    small_gap = (
        one(serve(8, execution="legacy-engine"), "h100-sxm").duration_seconds
        / one(serve(8), "h100-sxm").duration_seconds
    )
    assert small_gap < legacy.duration_seconds / modern.duration_seconds


def test_eager_attention_costs_more_than_flash_at_long_prompts():
    w = prefill(model="qwen2-1.5b", inference={"input_tokens": 8192})
    eager = one(w, "a100-pcie-40gb")
    flash = one(w.model_copy(update={"attention": "flash"}), "a100-pcie-40gb")
    assert eager.duration_seconds > 1.5 * flash.duration_seconds
    short = prefill(model="qwen2-1.5b", inference={"input_tokens": 128, "batch_size": 8, "requests": 8})
    ratio = (
        one(short, "a100-pcie-40gb").duration_seconds
        / one(short.model_copy(update={"attention": "flash"}), "a100-pcie-40gb").duration_seconds
    )
    assert ratio < 1.3


def test_fp32_convolutions_use_tf32_tensor_cores_where_available():
    """cuDNN allows TF32 for fp32 convolutions by default: ResNet fp32 is close to bf16 on A100, not 8x slower."""
    w = prefill(model="resnet-101", inference={"input_tokens": 1, "batch_size": 64, "requests": 64})
    fp32 = one(w.model_copy(update={"precision": "fp32"}), "a100-pcie-40gb")
    bf16 = one(w, "a100-pcie-40gb")
    assert fp32.duration_seconds < 3.0 * bf16.duration_seconds
    # V100 has no TF32: fp32 convolutions run on CUDA cores there.
    v_fp32 = one(w.model_copy(update={"precision": "fp32"}), "v100-sxm2-32gb")
    v_fp16 = one(w.model_copy(update={"precision": "fp16"}), "v100-sxm2-32gb")
    assert v_fp32.duration_seconds > 2.0 * v_fp16.duration_seconds


@pytest.mark.parametrize(
    ("source", "gpu", "campaign"),
    [
        ("energaizer-artifact-a10", "a10", "energaizer-artifact"),
        ("energaizer-artifact-a100", "a100-pcie-40gb", "energaizer-artifact"),
        ("energaizer-artifact-dvfs", "a100-pcie-40gb", "energaizer-artifact-dvfs"),
        ("mlenergy-v2", "h100-sxm", "mlenergy-v2"),
    ],
)
def test_ranking_pairs_rows_of_one_campaign_across_gpus(source, gpu, campaign):
    from energaizer.calibration.validate import _campaign

    assert _campaign(source, gpu) == campaign
