"""Fleet-mode marginal objective and counterfactual energies of the shared optimiser."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from energaizer.placement import (
    FleetMode,
    FleetModel,
    PlacementProblem,
    counterfactual_energy,
    marginal_fleet_energy,
    objective_matrix,
    solve,
)

INF = math.inf

# two types: a fast one with a high idle floor and a slow frugal one
ENERGY = np.array([[1000.0, 900.0], [5000.0, INF]])
DURATION = np.array([[10.0, 40.0], [20.0, INF]])
DEMAND = np.array([1.0, 2.0])
IDLE = np.array([60.0, 15.0])


def test_static_marginal_is_the_energy_above_the_idle_floor() -> None:
    fleet = FleetModel(FleetMode.STATIC, IDLE)
    m = marginal_fleet_energy(ENERGY, DURATION, DEMAND, fleet)
    assert m[0].tolist() == [1000 - 10 * 60, 900 - 40 * 15]
    assert m[1, 0] == 5000 - 2 * 20 * 60 and m[1, 1] == INF


def test_static_marginal_is_clipped_for_the_optimiser_but_not_for_bounds() -> None:
    fleet = FleetModel("static", IDLE)
    low = np.array([[100.0, 900.0]])
    assert marginal_fleet_energy(low, DURATION[:1], DEMAND[:1], fleet)[0, 0] == 0.0
    assert marginal_fleet_energy(low, DURATION[:1], DEMAND[:1], fleet, clip=False)[0, 0] == 100 - 600


def test_elastic_marginal_adds_the_idle_timeout_tail() -> None:
    fleet = FleetModel(FleetMode.ELASTIC, IDLE, idle_timeout_seconds=100)
    m = marginal_fleet_energy(ENERGY, DURATION, DEMAND, fleet)
    assert m[0].tolist() == [1000 + 100 * 60, 900 + 100 * 15]
    assert m[1, 0] == 5000 + 2 * 100 * 60


def test_fleet_mode_changes_which_type_the_optimiser_picks() -> None:
    energy = np.array([[1000.0, 950.0]])
    duration = np.array([[10.0, 40.0]])
    demand = np.array([1.0])
    plain = objective_matrix(energy, duration, "energy")
    static = objective_matrix(energy, duration, "energy", fleet=FleetModel("static", IDLE), demand=demand)
    # job energy: the slow type (950 < 1000); static: 1000 - 600 = 400 vs 950 - 600 = 350 -> slow
    # with a higher idle floor on the slow type, static flips to the fast one
    flipped = objective_matrix(
        energy, duration, "energy", fleet=FleetModel("static", np.array([60.0, 5.0])), demand=demand
    )
    capacity = np.array([1.0, 1.0])
    pick = [
        int(solve(PlacementProblem(["j"], ["fast", "slow"], c, demand, capacity)).assignment[0])
        for c in (plain, static, flipped)
    ]
    assert pick == [1, 1, 0]
    assert objective_matrix(energy, duration, "time", fleet=FleetModel("static", IDLE), demand=demand)[
        0
    ].tolist() == [10.0, 40.0]
    with pytest.raises(ValueError, match="demand"):
        objective_matrix(energy, duration, "energy", fleet=FleetModel("static", IDLE))


def test_fleet_model_validates_its_inputs() -> None:
    with pytest.raises(ValueError):
        FleetModel("sometimes", IDLE)
    with pytest.raises(ValueError, match="idle_power_watts"):
        FleetModel("static", np.array([-1.0]))
    with pytest.raises(ValueError, match="idle_timeout"):
        FleetModel("elastic", IDLE, idle_timeout_seconds=-5)
    with pytest.raises(ValueError, match="do not match"):
        marginal_fleet_energy(ENERGY, DURATION, DEMAND, FleetModel("static", np.array([1.0, 2.0, 3.0])))


def test_counterfactual_plain_scheduler_takes_the_first_free_feasible_type_in_default_order() -> None:
    estimates = {"h100": 300.0, "a100": 400.0, "l4": 250.0, "t4": None}
    order = ["t4", "a100", "h100", "l4"]
    cf = counterfactual_energy(estimates, order, {"t4": 8, "a100": 0, "h100": 4, "l4": 4}, demand=2)
    assert cf is not None
    assert (cf.plain_gpu_type, cf.plain_energy_joules, cf.plain_had_room) == ("h100", 300.0, True)
    assert (cf.worst_gpu_type, cf.worst_energy_joules) == ("a100", 400.0)
    assert cf.savings_joules(250.0) == (50.0, 150.0)
    assert cf.savings_joules(400.0) == (-100.0, 0.0)  # a worse choice than the plain scheduler's


def test_counterfactual_without_room_reports_the_first_feasible_type_and_none_when_nothing_fits() -> None:
    estimates = {"a": float("nan"), "b": 10.0, "c": 20.0}
    cf = counterfactual_energy(estimates, ["a", "b", "c"], {"b": 1, "c": 1}, demand=4)
    assert cf is not None and cf.plain_gpu_type == "b" and not cf.plain_had_room
    # types missing from the default order come after it
    cf = counterfactual_energy({"x": 5.0, "y": 7.0}, ["y"], {"x": 1, "y": 0}, demand=1)
    assert cf is not None and cf.plain_gpu_type == "x" and cf.worst_gpu_type == "y"
    assert counterfactual_energy({"a": None, "b": INF}, ["a", "b"], {"a": 8}, demand=1) is None


def test_elastic_job_that_powers_up_a_node_pays_for_the_gpus_it_leaves_idle() -> None:
    energy, duration, demand = np.array([[1000.0]]), np.array([[10.0]]), np.array([1.0])
    base = dict(idle_power_watts=np.array([15.0]), idle_timeout_seconds=100.0, gpus_per_node=np.array([4.0]))
    # no powered node: it powers one up and leaves 3 GPUs idle for its 10 s and the 100 s timeout
    cold = marginal_fleet_energy(energy, duration, demand, FleetModel("elastic", **base))
    assert cold[0, 0] == 1000 + 15 * (100 + 3 * 110)
    # two idle GPUs on a node that stays up 4 s anyway: the node is kept 106 s longer for it (its
    # run and the timeout after it), and for 4 s it replaces an idle GPU's draw
    warm = marginal_fleet_energy(
        energy,
        duration,
        demand,
        FleetModel("elastic", **base, idle_powered_gpus=np.array([2.0]), powered_for_seconds=np.array([4.0])),
    )
    assert warm[0, 0] == 1000 + 15 * (100 + 3 * 106 - 4)
    # when the pool usually keeps 2 more GPUs busy, only 1 of the node's GPUs is left idle
    usual = FleetModel(
        "elastic",
        **base,
        idle_powered_gpus=np.array([2.0]),
        powered_for_seconds=np.array([4.0]),
        typical_busy_gpus=np.array([2.0]),
    )
    assert marginal_fleet_energy(energy, duration, demand, usual)[0, 0] == 1000 + 15 * (100 + 1 * 106 - 4)
    # ... for as long as that load is known (2 s of the 106 s the job keeps the node up): 1 GPU idle
    # for 2 s, then all 3 for the other 104 s
    known = replace(usual, typical_busy_seconds=2.0)
    assert marginal_fleet_energy(energy, duration, demand, known)[0, 0] == 1000 + 15 * (
        100 + 1 * 2 + 3 * 104 - 4
    )
    with pytest.raises(ValueError, match="typical_busy_seconds"):
        replace(usual, typical_busy_seconds=-1.0)
    # a node that stays up 50 s beyond the job's end and timeout anyway: the job keeps nothing up
    # and pays its energy less the idle draw it replaces (the static marginal), no timeout tail
    stays = FleetModel(
        "elastic", **base, idle_powered_gpus=np.array([2.0]), powered_for_seconds=np.array([160.0])
    )
    assert marginal_fleet_energy(energy, duration, demand, stays)[0, 0] == 1000 - 15 * 10
    # ... and a node due to power down in 15 s: the job keeps it up 95 s longer (its 10 s run and
    # the 100 s timeout after it), its own GPU and the node's other 3
    soon = replace(stays, powered_for_seconds=np.array([15.0]))
    assert marginal_fleet_energy(energy, duration, demand, soon)[0, 0] == 1000 + 15 * (95 + 3 * 95 - 10)
    # a whole-node job leaves nothing idle on its node
    whole = marginal_fleet_energy(energy, duration, np.array([4.0]), FleetModel("elastic", **base))
    assert whole[0, 0] == 1000 + 15 * 4 * 100
    with pytest.raises(ValueError, match="gpus_per_node"):
        FleetModel("elastic", IDLE, gpus_per_node=np.array([0.0, 8.0]))
    with pytest.raises(ValueError, match="idle_powered_gpus"):
        FleetModel("elastic", IDLE, idle_powered_gpus=np.array([1.0]))
