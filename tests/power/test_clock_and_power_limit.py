"""What-if SM clock and power limit: the power-cap clock solve and DVFS."""

from __future__ import annotations

from energaizer import Workload


def test_lower_power_limit_lowers_power_and_never_shortens_time(one):
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


def test_lower_clock_slows_compute_bound_work(one):
    w = Workload(
        model="qwen2-1.5b",
        task="training",
        training={"steps": 5, "global_batch_size": 16, "sequence_length": 2048},
    )
    fast = one(w.model_copy(update={"frequency_mhz": 1410.0}), "a100-sxm4-80gb")
    slow = one(w.model_copy(update={"frequency_mhz": 705.0}), "a100-sxm4-80gb")
    assert slow.duration_seconds > 1.3 * fast.duration_seconds  # compute share of time doubles
    assert slow.average_power_watts < fast.average_power_watts
