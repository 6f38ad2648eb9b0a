"""The CLI's JSON writer (orjson): the values ``json.dumps`` would write, non-finite floats as null,
indented by 2 spaces or compact."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energaizer.cli.common import _clean, dumps_json, join_json_arrays


def reference(data) -> object:
    """What the standard library writes, read back."""
    return json.loads(json.dumps(_clean(data), allow_nan=False))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
keys = st.text(max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=12,
    ),
    st.booleans(),
)
def test_any_value_reads_back_as_json_writes_it(data, pretty):
    assert json.loads(dumps_json(data, pretty)) == reference(data)


@pytest.mark.parametrize(
    "data",
    [
        [{"a": 1}, {"b": 2}],
        [{"a": [1, float("nan")]}],
        [{"k%s": "v%d", "%": "%%"}],
        [{"a": float("inf"), "b": -float("inf"), "c": float("nan"), "d": -0.0, "e": 1e300, "f": 2.5e-05}],
        [{"a": True, "b": 10**40, "c": 'é\u2028"\\'}],  # beyond 64 bits: through json
        [{1: "x"}],  # non-string keys become strings, as json writes them
        [],
        {"a": [{"b": 1}]},
    ],
)
def test_edge_cases(data):
    for pretty in (True, False):
        assert json.loads(dumps_json(data, pretty)) == reference(data)


def test_non_finite_become_null():
    out = json.loads(dumps_json([{"x": math.nan, "y": {"z": math.inf}}]))
    assert out == [{"x": None, "y": {"z": None}}]


def test_layout_is_indented_by_two_or_compact():
    data = [{"gpu": "h100-sxm", "breakdown": {"static": 1.5}}]
    assert dumps_json(data) == json.dumps(data, indent=2)
    assert dumps_json(data, pretty=False) == json.dumps(data, separators=(",", ":"))


def test_numpy_values_are_written_as_numbers():
    out = json.loads(dumps_json({"a": np.float64(1.5), "b": np.arange(3), "c": np.int64(7)}))
    assert out == {"a": 1.5, "b": [0, 1, 2], "c": 7}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(scalars, st.dictionaries(keys, scalars, max_size=3), st.lists(scalars)), max_size=3
        ),
        min_size=1,
        max_size=4,
    )
)
def test_arrays_written_in_parts_join_to_what_the_whole_writes(parts):
    """The worker processes of ``estimate --from-csv --json`` write their parts' arrays; joined, the text
    is byte for byte what one process writes for all the rows (a part may be empty, or hold an object
    whose strings contain brackets and newlines)."""
    whole = [x for part in parts for x in part]
    assert join_json_arrays([dumps_json(part) for part in parts]) == dumps_json(whole)


def test_joined_parts_with_brackets_and_newlines_in_strings():
    parts = [[{"reason": "a\n]"}], [], ["[", {"x": [1, {"y": "]\n["}]}]]
    whole = [x for part in parts for x in part]
    assert join_json_arrays([dumps_json(part) for part in parts]) == dumps_json(whole)
    assert join_json_arrays([dumps_json([])]) == dumps_json([]) == "[]"
