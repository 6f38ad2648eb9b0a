"""Training feasibility searches the layout per GPU type: tensor parallelism, micro-batch (gradient
accumulation) and recomputation, as a framework would; the chosen layout is in the output."""

from __future__ import annotations

from energaizer import Workload, estimate

STEP = {"steps": 10, "global_batch_size": 32, "sequence_length": 2048}


def run(gpu: str, **kw):
    (e,) = estimate(Workload(model="gemma-2-2b", task="training", gpu_count=4, training=STEP, **kw), gpu)
    return e


def test_a_workload_that_fits_a_small_gpu_fits_a_large_one():
    """The issue's case: 76.2 GB per GPU on an H100 with one layout, while the L4 fitted with another."""
    for gpu in ("h100-sxm", "a100-sxm4-80gb", "l4"):
        e = run(gpu)
        assert e.feasible, (gpu, e.reason)
    h100 = run("h100-sxm").layout
    assert h100["tensor_parallel"] == 1 and h100["data_parallel"] == 4
    # 8 sequences per replica, fewer per micro-batch: gradient accumulation instead of more TP
    assert h100["micro_batch_sequences"] * h100["gradient_accumulation_steps"] == 8
    assert not h100["activation_recomputation"]
    l4 = run("l4").layout
    assert l4["tensor_parallel"] >= 2  # the optimizer state alone (42 GB) exceeds one L4


def test_explicit_choices_are_kept():
    e = run("h100-sxm", tensor_parallel=2)
    assert e.layout["tensor_parallel"] == 2
    rc = Workload(
        model="gemma-2-2b", task="training", gpu_count=4, training={**STEP, "activation_recomputation": True}
    )
    (r,) = estimate(rc, "h100-sxm")
    assert r.layout["activation_recomputation"] is True


def test_no_layout_fits_is_infeasible_with_a_reason():
    w = Workload(model="llama-3.1-70b", task="training", gpu_count=2, training=STEP)
    (e,) = estimate(w, "l4")
    assert not e.feasible and "does not fit" in e.reason


def test_inference_layout_is_reported():
    w = Workload(model="llama-3.1-8b", gpu_count=2, inference={"requests": 8, "output_tokens": 16})
    (e,) = estimate(w, "h100-sxm")
    assert e.layout == {"tensor_parallel": 2, "data_parallel": 1, "expert_parallel": 1}
