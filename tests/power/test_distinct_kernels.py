"""The operating-point solve merges bit-identical kernels: exactly, and never two that differ."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from energaizer.power.model import distinct_rows


def _check(columns: list[np.ndarray]) -> None:
    first, inverse = distinct_rows(columns)
    bits = np.stack([np.asarray(c, dtype=np.float64).view(np.uint64) for c in columns], axis=1)
    # every row maps to a representative with the very same bits
    assert np.array_equal(bits[first][inverse], bits)
    # and the representatives are pairwise distinct: as many as there are distinct bit patterns
    assert first.size == np.unique(bits, axis=0).shape[0]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=40).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, np.nan, np.inf, 1e300]), min_size=n, max_size=n),
            min_size=1,
            max_size=4,
        )
    )
)
def test_distinct_rows_merges_exactly_the_identical_rows(cols):
    _check([np.array(c) for c in cols])


def test_signed_zero_and_nan_are_told_apart_by_their_bits():
    zero = np.array([0.0, -0.0, 0.0, np.nan, np.nan])
    first, inverse = distinct_rows([zero, np.array([True, True, True, False, False])])
    assert first.size == 3
    assert inverse[0] == inverse[2] != inverse[1]
    assert inverse[3] == inverse[4]


def test_empty_and_all_distinct():
    first, inverse = distinct_rows([np.zeros(0)])
    assert first.size == inverse.size == 0
    first, inverse = distinct_rows([np.arange(5.0), np.arange(5) % 2 == 0])
    assert sorted(first.tolist()) == [0, 1, 2, 3, 4]
