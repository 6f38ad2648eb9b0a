"""Inputs the estimator must not silently accept: precisions a GPU cannot run, tensor-parallel layouts
that do not split the attention heads, absurd replica sizes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from energaizer import Workload, estimate
from energaizer.errors import InvalidInputError

SERVE = {"requests": 64, "input_tokens": 256, "output_tokens": 128, "batch_size": 16}


@pytest.mark.parametrize(
    ("gpu", "precision", "math"),
    [
        ("a100-sxm4-80gb", "fp8", "bf16"),
        ("t4", "fp8", "fp16"),
        ("v100-sxm2-32gb", "bf16", "fp16"),
        ("t4", "bf16", "fp16"),
    ],
)
def test_a_precision_the_gpu_cannot_run_is_an_explicit_fallback(gpu, precision, math):
    (e,) = estimate(Workload(model="qwen2-1.5b", precision=precision, inference=SERVE), gpu)
    assert e.feasible
    assert f"precision {precision} is not supported by {gpu}" in e.reason
    assert f"{math} math" in e.reason


def test_native_precisions_have_no_note():
    (e,) = estimate(Workload(model="llama-3.1-8b", precision="fp8", inference=SERVE), "h100-sxm")
    assert e.reason == ""


def test_tensor_parallelism_must_divide_the_attention_heads():
    with pytest.raises(InvalidInputError) as err:
        estimate(Workload(model="llama-3.1-8b", gpu_count=3, inference=SERVE), "h100-sxm")
    assert err.value.field == "gpu_count"
    assert "32 attention heads" in str(err.value) and "8" in err.value.allowed
    w = Workload(model="llama-3.1-8b", task="training", gpu_count=6, tensor_parallel=3, training={"steps": 1})
    with pytest.raises(InvalidInputError) as err:
        estimate(w, "h100-sxm")
    assert err.value.field == "tensor_parallel"


def test_an_inference_replica_has_a_sane_size():
    with pytest.raises(ValidationError, match="inference replica"):
        Workload(model="llama-3.1-8b", gpu_count=4096, inference=SERVE)
    Workload(model="llama-3.1-8b", gpu_count=4096, task="training", training={"steps": 1})


def test_inference_tensor_parallel_below_the_gpus_makes_the_rest_data_parallel():
    """4 GPUs at tensor parallel 2: two engines of 2 GPUs, each with half the sequences (as training's
    rest is data parallel, and as --data-parallel 2 says), not one engine whose work 4 GPUs all repeat
    (twice the energy of 2 GPUs at the same duration)."""
    serve = {"requests": 256, "input_tokens": 256, "output_tokens": 128, "batch_size": 32}
    implied, explicit, two = (
        estimate(Workload(model="llama-3.1-8b", gpu_count=g, inference=serve, **kw), "h100-sxm")[0]
        for g, kw in ((4, {"tensor_parallel": 2}), (4, {"tensor_parallel": 2, "data_parallel": 2}), (2, {}))
    )
    assert implied.energy_joules == explicit.energy_joules
    assert implied.layout["data_parallel"] == 2 and implied.layout["tensor_parallel"] == 2
    assert implied.duration_seconds < two.duration_seconds


def test_a_gpu_figure_that_gives_no_finite_estimate_makes_the_row_infeasible_saying_so():
    """A GPUSpec built in code skips the catalog's bounds: a bandwidth of 1e300 GB/s gives NaN DRAM power.
    The row is infeasible with the reason, never ``feasible`` with null numbers."""
    import math
    import warnings

    from energaizer.catalog import get_gpu

    absurd = get_gpu("l4").model_copy(update={"id": "l4-absurd", "memory_bw_gbs": 1e300})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (e,) = estimate(Workload(model="qwen2-1.5b", inference=SERVE), [absurd])
    assert not e.feasible and math.isnan(e.energy_joules)
    assert e.reason.startswith("no finite estimate") and "l4-absurd" in e.reason
