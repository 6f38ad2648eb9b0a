"""Bounded waiting (maxWaitSeconds), the fleet mode and the counterfactuals of one batch decision.

All pure: the waited time is an argument (the placer passes its injectable clock's reading)."""

from __future__ import annotations

import pytest
from energaizer_operator.batch import (
    FleetSettings,
    PendingJob,
    TypeEstimate,
    decide,
    plain_scheduler_order,
    wait_allowance_seconds,
)
from energaizer_operator.inventory import NodeGPUs, PodGPUs, compute_capacity
from energaizer_operator.settings import OperatorSettings

from energaizer.errors import InvalidInputError
from energaizer.placement import FleetMode


def _est(energy: float, duration: float) -> TypeEstimate:
    return TypeEstimate(energy, duration, energy / duration, True)


def _job(waited: float, *, max_wait: float = 900.0, deadline: float | None = None, **est: TypeEstimate):
    return PendingJob("ns/j", "uid-j", 1, 1, "energy", est, max_wait, waited, deadline)


def _cluster(**free: int):
    """One node per type; ``free`` GPUs of 2 free (the rest held by a pod)."""
    nodes = [NodeGPUs(t, f"P-{t}", t, 2, True) for t in free]
    pods = [PodGPUs(t, 2 - n) for t, n in free.items() if n < 2]
    return compute_capacity(nodes, pods, [])


def test_a_job_waits_for_its_best_type_then_takes_the_best_free_one():
    cap = _cluster(a=0, b=2, c=2)  # its best type a is full
    est = {"a": _est(10.0, 100.0), "b": _est(20.0, 50.0), "c": _est(30.0, 40.0)}
    [d], _ = decide([_job(100.0, **est)], cap)
    assert d.waiting and d.gpu_type is None
    assert d.wait_left_seconds == pytest.approx(800.0)
    assert d.reason == "waiting up to 800 s more for a (maxWaitSeconds 900 s)"
    [d], _ = decide([_job(900.0, **est)], cap)  # waited maxWaitSeconds: the best free type
    assert not d.waiting and d.gpu_type == "b"
    [d], _ = decide([_job(0.0, **est)], _cluster(a=1, b=2, c=2))  # a is free: no waiting at all
    assert d.gpu_type == "a"


def test_max_wait_zero_never_waits():
    est = {"a": _est(10.0, 100.0), "b": _est(20.0, 50.0)}
    [d], _ = decide([_job(0.0, max_wait=0.0, **est)], _cluster(a=0, b=2))
    assert d.gpu_type == "b"


def test_deadlines_win_over_waiting():
    est = {"a": _est(10.0, 100.0), "b": _est(20.0, 50.0)}
    job = _job(0.0, deadline=150.0, **est)
    assert wait_allowance_seconds(job, [100.0]) == pytest.approx(50.0)  # 150 s deadline - 100 s run
    [d], _ = decide([_job(10.0, deadline=150.0, **est)], _cluster(a=0, b=2))
    assert d.waiting and d.wait_left_seconds == pytest.approx(40.0)
    [d], _ = decide([_job(50.0, deadline=150.0, **est)], _cluster(a=0, b=2))
    assert d.gpu_type == "b"
    assert wait_allowance_seconds(_job(0.0, deadline=80.0, **est), [100.0]) == 0.0


def test_types_within_the_slack_are_not_waited_for():
    est = {"a": _est(10.0, 100.0), "b": _est(10.4, 100.0), "c": _est(30.0, 10.0)}
    [d], _ = decide([_job(0.0, **est)], _cluster(a=0, b=2, c=2))
    assert d.gpu_type == "b"  # within 5 % of a: preferred, free


def test_counterfactuals_plain_scheduler_and_worst_type():
    cap = _cluster(a=1, b=2, c=2)
    assert plain_scheduler_order(cap) == ["b", "c", "a"]  # most free GPUs first, ties by id
    est = {"a": _est(10.0, 100.0), "b": _est(25.0, 50.0), "c": _est(40.0, 40.0)}
    [d], _ = decide([_job(0.0, **est)], cap)
    assert d.gpu_type == "a"
    assert d.plain_gpu_type == "b" and d.plain_energy_joules == pytest.approx(25.0)
    assert d.savings_vs_plain_joules == pytest.approx(15.0)
    assert d.worst_energy_joules == pytest.approx(40.0)
    assert d.savings_joules == pytest.approx(30.0)  # the contract's savingsJoules: against the worst


def test_fleet_mode_changes_the_choice():
    # l4 idles at 16.5 W, h100-sxm at 72 W (catalog). A slow l4 run replaces a lot of idle draw in a
    # static fleet; in an elastic one the l4 stays powered for it and h100's lower energy wins.
    est = {"l4": _est(1.0e6, 10_000.0), "h100-sxm": _est(0.95e6, 1_000.0)}
    cap = _cluster(**{"l4": 2, "h100-sxm": 2})
    job = _job(0.0, **est)
    static = FleetSettings(FleetMode.STATIC, 600.0)
    elastic = FleetSettings(FleetMode.ELASTIC, 600.0)
    assert decide([job], cap)[0][0].gpu_type == "h100-sxm"  # the job's own energy
    assert decide([job], cap, fleet=static)[0][0].gpu_type == "l4"
    assert decide([job], cap, fleet=elastic)[0][0].gpu_type == "h100-sxm"


def test_settings_for_waiting_and_fleet_mode():
    s = OperatorSettings.from_env({})
    assert (s.max_wait_seconds, s.fleet_mode, s.fleet_idle_timeout_seconds) == (900.0, "static", 600.0)
    s = OperatorSettings.from_env({"ENERGAIZER_FLEET_MODE": "Elastic", "ENERGAIZER_MAX_WAIT_SECONDS": "60"})
    assert (s.fleet_mode, s.max_wait_seconds) == ("elastic", 60.0)
    with pytest.raises(InvalidInputError, match="ENERGAIZER_FLEET_MODE"):
        OperatorSettings.from_env({"ENERGAIZER_FLEET_MODE": "spot"})
    with pytest.raises(InvalidInputError, match="ENERGAIZER_MAX_WAIT_SECONDS"):
        OperatorSettings.from_env({"ENERGAIZER_MAX_WAIT_SECONDS": "-1"})
