"""Fleet energy accounting: idle GPUs over one common horizon, static and elastic, and the fleet bound."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer.placement import FleetMode, FleetModel
from energaizer.planner.bounds import fleet_lower_bound
from energaizer.planner.costs import CostCache
from energaizer.planner.demo import DemoConfig, generate_demo
from energaizer.planner.fleet import busy_steps, pool_idle_gpu_seconds
from energaizer.planner.plan import PlanOptions, run_plan
from energaizer.planner.pools import default_demo_pools


def idle(start, end, demand, *, gpn: int, nodes: int, mode: str, horizon: float, timeout: float = 10.0):
    return pool_idle_gpu_seconds(
        np.asarray(start, dtype=float),
        np.asarray(end, dtype=float),
        np.asarray(demand, dtype=float),
        gpus_per_node=gpn,
        nodes=nodes,
        mode=FleetMode(mode),
        horizon_start=0.0,
        horizon_end=horizon,
        idle_timeout_seconds=timeout,
    )


def test_busy_steps() -> None:
    t, level = busy_steps(np.array([0.0, 5.0, 5.0]), np.array([10.0, 8.0, 20.0]), np.array([1.0, 2.0, 1.0]))
    assert t.tolist() == [0, 5, 8, 10, 20] and level.tolist() == [1, 4, 2, 1, 0]


def test_static_idle_is_every_gpu_over_the_horizon_minus_busy() -> None:
    assert idle([0], [30], [1], gpn=2, nodes=1, mode="static", horizon=100) == 200 - 30
    assert idle([], [], [], gpn=2, nodes=3, mode="static", horizon=50) == 300


def test_elastic_keeps_a_node_for_the_idle_timeout_after_its_last_job() -> None:
    # one 1-GPU job on a 4-GPU node: the node's 3 other GPUs idle while it runs, all 4 for 10 s after
    assert idle([0], [30], [1], gpn=4, nodes=2, mode="elastic", horizon=100) == pytest.approx(3 * 30 + 4 * 10)
    # a second job within the timeout reuses the still-powered node: one node throughout
    assert idle([0, 35], [30, 50], [1, 1], gpn=1, nodes=2, mode="elastic", horizon=100) == pytest.approx(
        5 + 10
    )
    # after the timeout the node is gone: two tails
    assert idle([0, 60], [30, 70], [1, 1], gpn=1, nodes=2, mode="elastic", horizon=100) == pytest.approx(
        10 + 10
    )
    # the horizon cuts the last tail; nothing runs -> nothing powered
    assert idle([0], [95], [1], gpn=1, nodes=1, mode="elastic", horizon=100) == pytest.approx(5)
    assert idle([], [], [], gpn=4, nodes=2, mode="elastic", horizon=100) == 0.0


def test_elastic_never_powers_more_nodes_than_the_pool_has() -> None:
    # peak 8 GPUs on 2 nodes of 4, then 1 GPU: both nodes stay for the timeout, then one
    got = idle([0, 0, 10], [10, 10, 40], [7, 1, 1], gpn=4, nodes=2, mode="elastic", horizon=100, timeout=5)
    # [10, 15): 8 powered, 1 busy -> 35; [15, 40): 4 powered, 1 busy -> 75; [40, 45): 4 idle -> 20
    assert got == pytest.approx(35 + 75 + 20)


def test_fleet_lower_bound_static_and_elastic() -> None:
    energy = np.array([[100.0, 60.0], [100.0, 60.0]])
    duration = np.array([[10.0, 40.0], [10.0, 40.0]])
    demand = np.ones(2)
    submit = np.zeros(2)
    gpus = np.array([1.0, 1.0])
    runnable = np.ones(2, dtype=bool)
    static = FleetModel("static", np.array([2.0, 1.0]))
    # horizon 100: floor (2 + 1) * 100 = 300; marginals 80 (fast) and 20 (slow); the slow GPU has
    # room for both (80 s <= 100 s): 300 + 40
    assert fleet_lower_bound(
        energy, duration, demand, submit, gpus, static, 100.0, runnable
    ) == pytest.approx(340)
    # horizon 50: the slow GPU takes 1.25 jobs at most -> 150 + 1.25*20 + 0.75*80
    assert fleet_lower_bound(energy, duration, demand, submit, gpus, static, 50.0, runnable) == pytest.approx(
        150 + 25 + 60
    )
    elastic = FleetModel("elastic", np.array([2.0, 1.0]))
    assert fleet_lower_bound(
        energy, duration, demand, submit, gpus, elastic, 100.0, runnable
    ) == pytest.approx(120)


@pytest.fixture(scope="module")
def demo_pair():
    pools = default_demo_pools()
    cache = CostCache()
    trace = generate_demo(pools, DemoConfig(jobs=300, seed=5), cache)
    return {
        mode: run_plan(trace, pools, PlanOptions(seed=5, fleet_mode=mode), cache=cache)
        for mode in ("static", "elastic")
    }


@pytest.mark.parametrize("mode", ["static", "elastic"])
def test_every_policy_is_counted_over_the_same_horizon(demo_pair, mode: str) -> None:
    r = demo_pair[mode]
    longest = max(m.makespan_seconds for m in r.metrics)
    extra = r.options.idle_timeout_seconds if mode == "elastic" else 0.0
    assert r.horizon_seconds == pytest.approx(longest + extra)
    for m in r.metrics:
        assert m.fleet_energy_joules == pytest.approx(m.total_energy_joules + m.idle_energy_joules)
        assert m.fleet_energy_joules >= r.lower_bound_fleet_energy_joules * (1 - 1e-9)
        assert sum(p.idle_energy_joules for p in m.pools) == pytest.approx(m.idle_energy_joules)
        if mode == "static":
            floor = sum(p.gpus * r.horizon_seconds for p in r.pools)
            busy = sum(p.busy_gpu_seconds for p in m.pools)
            assert busy / floor == pytest.approx(
                sum(p.utilisation * p.gpus for p in m.pools) / sum(p.gpus for p in r.pools)
            )


def test_elastic_idle_is_below_static_idle(demo_pair) -> None:
    for name in ("energy-aware", "first-fit", "fastest-gpu"):
        assert (
            demo_pair["elastic"].policy(name).idle_energy_joules
            < demo_pair["static"].policy(name).idle_energy_joules
        )
