"""Row parameters: the execution style (attention, dispatch) that ``auto`` resolves to: today's
production stacks; eager reference code is opt-in."""

from __future__ import annotations

import pytest

from energaizer import Workload
from energaizer.kernels.params import execution_style


@pytest.mark.parametrize(
    ("task", "inference", "expected"),
    [
        ("inference", {"output_tokens": 0, "batch_size": 8, "requests": 8}, ("flash", "graphs")),
        ("inference", {"output_tokens": 64, "batch_size": 1, "requests": 4}, ("flash", "graphs")),
        ("inference", {"output_tokens": 64, "batch_size": 32, "requests": 64}, ("flash", "graphs")),
        ("training", None, ("flash", "eager")),
    ],
)
def test_auto_resolves_to_todays_production_stack(task, inference, expected):
    """Fused attention everywhere, CUDA-graph serving at every batch size; training dispatches eagerly."""
    if task == "training":
        w = Workload(model="gpt2", task="training", training={"steps": 1, "global_batch_size": 8})
    else:
        w = Workload(model="llama-3.1-8b", inference=inference)
    assert execution_style(w) == expected


def test_explicit_choices_override_auto():
    w = Workload(model="llama-3.1-8b", attention="eager", execution="eager", inference={"output_tokens": 0})
    assert execution_style(w) == ("eager", "eager")
    t = Workload(model="llama-3.1-8b", execution="graphs", task="training", training={"steps": 1})
    assert execution_style(t) == ("flash", "graphs")


def test_defaults_are_faster_than_eager_reference_code_for_prefill_and_batch_one_decode(one):
    """The issue's NVML runs: defaults used to pick eager attention for prefill-only rows (3.9x the
    energy at 4 x 8192 tokens) and eager dispatch at batch 1 (2.2-2.4x)."""
    pre = Workload(
        model="llama-3.1-8b",
        inference={"requests": 4, "batch_size": 4, "input_tokens": 8192, "output_tokens": 0},
    )
    eager = pre.model_copy(update={"attention": "eager", "execution": "eager"})
    assert one(eager, "h100-sxm").energy_joules > 1.5 * one(pre, "h100-sxm").energy_joules
    dec = Workload(
        model="llama-3.1-8b",
        inference={"requests": 4, "batch_size": 1, "input_tokens": 128, "output_tokens": 256},
    )
    slow = one(dec.model_copy(update={"execution": "eager"}), "h100-sxm")
    assert slow.duration_seconds > 1.3 * one(dec, "h100-sxm").duration_seconds
