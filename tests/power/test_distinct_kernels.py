"""The operating-point solves merge bit-identical kernels: exactly, and never two that differ."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from gemm_support import one_gpu
from hypothesis import given, settings
from hypothesis import strategies as st

from energaizer.kernels.builders import gemm, memory
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.power.model import _compact, distinct_rows, solve_power_window, solve_uncapped
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=60))
def test_compact_numbers_the_distinct_keys_in_key_order(keys):
    keys = np.array(keys, dtype=np.int64)
    first, inverse = _compact(keys, 31)
    assert np.array_equal(keys[first], np.unique(keys))  # one per distinct key, ascending
    assert np.array_equal(keys[first][inverse], keys)
    for pos in first:  # the first occurrence of each
        assert not np.any(keys[:pos] == keys[pos])


def test_window_solve_merging_identical_kernels_changes_nothing():
    """The same GEMM and copy in windows whose host waits differ: their bisections part ways, so a class
    of identical kernels is at several clocks at once. Evaluating each (class, clock) once gives the
    very same figures as evaluating every kernel."""
    windows = 12
    b = KernelTableBuilder()
    rows = np.arange(windows)
    gemm(b, rows, Op.LINEAR, Phase.DECODE, 10.0, 8192.0, 8192.0, 8192.0, 2.0, 2.0)
    memory(b, rows, Op.NORM_ACT, Phase.DECODE, 10.0, 2.0 * 2**30)
    kt = b.build()
    n = kt.count.size
    hw, one = one_gpu("h100-sxm", "bf16")
    dev = KernelDevice(g=np.zeros(n, dtype=int), peak=np.repeat(one.peak, n), tensor=np.repeat(one.tensor, n))
    prof = CalibrationProfile(fused_dram_efficiency=0.9)  # the copy streams as a copy does (not paged KV)
    req, lim = np.full(n, hw.max_clock_mhz[0]), np.full(n, 700.0)
    window = kt.row.astype(np.int64)
    wait_s, wait_w = np.linspace(0.0, 0.006, windows), np.full(windows, 120.0)
    uncapped = solve_uncapped(kt, dev, req, hw, prof)
    assert np.unique(uncapped.kernel_class).size == 2  # one GEMM and one copy class
    merged = solve_power_window(kt, dev, req, lim, window, hw, prof, wait_s, wait_w, uncapped)
    alone = solve_power_window(
        kt, dev, req, lim, window, hw, prof, wait_s, wait_w, replace(uncapped, kernel_class=None)
    )
    assert np.unique(merged.clock_mhz).size > 2  # the windows settled at different clocks
    assert np.array_equal(merged.clock_mhz, alone.clock_mhz)
    for part in ("timing", "power"):
        a, b_ = getattr(merged, part), getattr(alone, part)
        for name in a.__dataclass_fields__:
            assert np.array_equal(getattr(a, name), getattr(b_, name)), (part, name)
