"""Whole estimates through the orchestrator: energy grows with work, the breakdown adds up, per-token figures, input checks."""

from __future__ import annotations

import math

import pytest

from energaizer import Workload
from energaizer.catalog import get_gpu


def test_more_tokens_cost_more_energy(one, llama_serving):
    small = one(llama_serving(inference={"output_tokens": 64}), "h100-sxm")
    big = one(llama_serving(inference={"output_tokens": 256}), "h100-sxm")
    more_req = one(llama_serving(inference={"requests": 800, "output_tokens": 64}), "h100-sxm")
    assert big.energy_joules > small.energy_joules
    assert more_req.energy_joules > small.energy_joules
    assert big.duration_seconds > small.duration_seconds


def test_multi_gpu_reports_whole_workload_energy_and_communication(one, llama_serving):
    w1 = llama_serving(model="llama-3.1-70b", gpu_count=4)
    e = one(w1, "h100-sxm")
    assert e.breakdown["communication"] > 0
    assert e.average_power_watts > get_gpu("h100-sxm").idle_power_w * 4
    assert math.isclose(sum(e.breakdown.values()), e.energy_joules, rel_tol=1e-9)


def test_breakdown_sums_and_epot(one, llama_serving):
    e = one(llama_serving(), "a100-sxm4-80gb")
    assert set(e.breakdown) >= {"static", "compute", "memory", "communication", "overhead"}
    assert sum(e.breakdown.values()) == pytest.approx(e.energy_joules)
    assert e.energy_per_output_token_joules == pytest.approx(e.energy_joules / (200 * 128))
    assert e.average_power_watts <= get_gpu("a100-sxm4-80gb").power_limit_default_w + 1e-6


def test_prefill_only_and_training_have_no_per_token_figure(one):
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


def test_out_of_range_knobs_are_rejected(one, llama_serving):
    from energaizer.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="frequency_mhz"):
        one(llama_serving(frequency_mhz=4000.0), "h100-sxm")
    with pytest.raises(InvalidInputError, match="power_limit_w"):
        one(llama_serving(power_limit_w=5.0), "h100-sxm")


def test_a_knob_some_of_the_gpu_types_cannot_take_makes_those_infeasible(llama_serving):
    """One workload asked of several types (which GPU should it run on?): a 600 W limit rules out the
    A100 (100-400 W), not the H100, which is estimated as alone; outside every type's range it is bad
    input, and a pair asked on its own (estimate_pairs, a CSV row) stays strict."""
    from energaizer import estimate, estimate_pairs
    from energaizer.errors import InvalidInputError

    w = llama_serving(power_limit_w=600.0)
    h100, a100 = estimate(w, ["h100-sxm", "a100-sxm4-40gb"])
    assert h100.feasible and h100.energy_joules == estimate(w, "h100-sxm")[0].energy_joules
    assert not a100.feasible and math.isnan(a100.energy_joules) and a100.power_limit_w == 600.0
    assert a100.reason == "power_limit_w: 600 W is outside a100-sxm4-40gb's power-limit range 100-400 W"
    (slow,) = [e for e in estimate(llama_serving(frequency_mhz=1900.0), "all") if e.gpu == "a100-sxm4-40gb"]
    assert not slow.feasible and "clock range 210-1410 MHz" in slow.reason
    with pytest.raises(InvalidInputError, match="outside the range of every other GPU type asked"):
        estimate(llama_serving(power_limit_w=900.0), ["h100-sxm", "a100-sxm4-40gb"])
    with pytest.raises(InvalidInputError, match="power_limit_w"):
        estimate_pairs([w, w], ["h100-sxm", "a100-sxm4-40gb"])
