"""Property tests: whatever the instance, the answer is feasible and never worse than doing nothing."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from energaizer.placement import PlacementProblem, greedy_assign, is_feasible, solve


@st.composite
def problems(draw: st.DrawFn) -> PlacementProblem:
    jobs = draw(st.integers(0, 12))
    types = draw(st.integers(1, 4))
    finite = st.floats(0, 1e6, allow_nan=False)
    cost = draw(arrays(float, (jobs, types), elements=st.one_of(finite, st.just(np.inf))))
    demand = draw(arrays(float, (jobs,), elements=st.sampled_from([1.0, 2.0, 4.0, 8.0])))
    capacity = draw(arrays(float, (types,), elements=st.integers(0, 16).map(float)))
    return PlacementProblem(
        [f"j{i}" for i in range(jobs)], [f"t{i}" for i in range(types)], cost, demand, capacity
    )


def check(p: PlacementProblem, assignment: np.ndarray) -> None:
    assert assignment.shape == (p.n_jobs,)
    placed = assignment >= 0
    idx = np.nonzero(placed)[0]
    assert np.isfinite(p.cost[idx, assignment[idx]]).all(), "placed on an infeasible type"
    load = np.bincount(assignment[idx], weights=p.demand[idx], minlength=p.n_types)
    assert (load <= p.capacity + 1e-9).all(), "capacity exceeded"


@settings(max_examples=150, deadline=None)
@given(problems())
def test_solve_never_exceeds_capacity_nor_uses_infeasible_pairs(p: PlacementProblem) -> None:
    r = solve(p)
    check(p, r.assignment)
    assert is_feasible(p, r.assignment)
    assert r.placed == int((r.assignment >= 0).sum())
    assert all((a >= 0) == (reason == "") for a, reason in zip(r.assignment, r.reasons, strict=True))


@settings(max_examples=150, deadline=None)
@given(problems())
def test_greedy_never_exceeds_capacity_and_places_what_fits_alone(p: PlacementProblem) -> None:
    a = greedy_assign(p)
    check(p, a)
    # a job left out must not fit anywhere in what is left (the greedy inserts whatever fits)
    placed = a >= 0
    load = np.bincount(a[placed], weights=p.demand[placed], minlength=p.n_types)
    free = p.capacity - load
    for j in np.nonzero(~placed)[0]:
        assert not (np.isfinite(p.cost[j]) & (p.demand[j] <= free + 1e-9)).any()


@settings(max_examples=80, deadline=None)
@given(problems())
def test_solve_places_at_least_as_many_as_greedy(p: PlacementProblem) -> None:
    r = solve(p)
    assert r.placed_weight >= p.weights[greedy_assign(p) >= 0].sum() - 1e-9
