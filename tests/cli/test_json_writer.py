"""The CLI's JSON writer: its columnar fast path writes exactly what ``json.dumps`` writes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energaizer.cli.common import _clean, dumps_json


def reference(data, indent=2) -> str:
    return json.dumps(_clean(data), indent=indent, allow_nan=False)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
keys = st.text(max_size=6)


@st.composite
def same_shaped_rows(draw):
    """A list of dicts with the same keys: scalars, or nested dicts of one shape."""
    top = draw(st.lists(keys, max_size=5, unique=True))
    nested = {k: draw(st.lists(keys, max_size=3, unique=True)) for k in top if draw(st.booleans())}
    n = draw(st.integers(min_value=1, max_value=6))
    rows = []
    for _ in range(n):
        row = {}
        for k in top:
            if k in nested:
                row[k] = {j: draw(scalars) for j in nested[k]}
            else:
                row[k] = draw(scalars)
        rows.append(row)
    return rows


@settings(max_examples=200, deadline=None)
@given(same_shaped_rows(), st.sampled_from([2, 0, 4]))
def test_fast_path_matches_json(rows, indent):
    assert dumps_json(rows, indent) == reference(rows, indent)


@settings(max_examples=200, deadline=None)
@given(st.lists(same_shaped_rows(), min_size=1, max_size=3), st.data(), st.sampled_from([2, 0]))
def test_rows_of_several_shapes_match_json(groups, data, indent):
    """Rows (or nested dicts, as the estimate's ``layout``) of several shapes, interleaved."""
    rows = [row for group in groups for row in group]
    rows = data.draw(st.permutations(rows))
    assert dumps_json(rows, indent) == reference(rows, indent)
    nested = [{"id": i, "layout": row} for i, row in enumerate(rows)]
    assert dumps_json(nested, indent) == reference(nested, indent)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=12,
    )
)
def test_any_value_matches_json(data):
    assert dumps_json(data) == reference(data)


@pytest.mark.parametrize(
    "data",
    [
        [{"a": 1}, {"b": 2}],  # different keys
        [{"a": 1, "b": 2}, {"b": 2, "a": 1}],  # different order
        [{"a": {"b": 1}}, {"a": 2}],
        [{"a": 2}, {"a": {"b": 1}}],
        [{"a": [1, float("nan")]}],  # lists go through json
        [{1: "x"}],  # non-string keys
        [{"k%s": "v%d", "%": "%%"}],  # % in keys and values
        [{}, {}],
        [{"a": {}}],
        [{"a": float("inf"), "b": -float("inf"), "c": float("nan"), "d": -0.0, "e": 1e300}],
        [{"a": None}, {"a": float("nan")}, {"a": 2.5}],
        [{"a": True, "b": 10**40, "c": 'é\u2028"\\'}],
        [1, 2.5, None],
        [],
        {"a": [{"b": 1}]},
    ],
)
def test_edge_cases(data):
    for indent in (2, None, 0):
        assert dumps_json(data, indent) == reference(data, indent)


def test_non_finite_become_null():
    out = json.loads(dumps_json([{"x": math.nan, "y": {"z": math.inf}}]))
    assert out == [{"x": None, "y": {"z": None}}]
