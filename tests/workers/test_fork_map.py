"""energaizer.workers: forked chunks of a batch, their results in order, a failed child's chunk
recomputed in the caller, and the CPU count a container's quota allows."""

from __future__ import annotations

import os
import platform

import pytest

from energaizer import workers
from energaizer.workers import available_cpus, chunk_bounds, fork_map, plan_workers

PARENT = os.getpid()


def _square_with_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_results_come_back_in_order_from_other_processes():
    out = fork_map(_square_with_pid, [1, 2, 3, 4])
    assert [v for v, _ in out] == [1, 4, 9, 16]
    assert out[0][1] == PARENT
    assert all(pid != PARENT for _, pid in out[1:])
    assert len({pid for _, pid in out}) == 4


def _fails_in_a_child(x: int) -> int:
    if os.getpid() != PARENT:
        raise MemoryError("a child that cannot finish")
    return x + 1


def test_a_failed_child_chunk_is_computed_by_the_caller():
    assert fork_map(_fails_in_a_child, [1, 2, 3]) == [2, 3, 4]


def _dies_in_a_child(x: int) -> int:
    if os.getpid() != PARENT:
        os._exit(9)
    return x


def test_a_child_that_dies_without_a_word_is_recomputed():
    assert fork_map(_dies_in_a_child, [5, 6]) == [5, 6]


def test_where_no_process_can_be_started_the_caller_computes_all(monkeypatch):
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert fork_map(_square_with_pid, [1, 2, 3]) == [(1, PARENT), (4, PARENT), (9, PARENT)]


def test_a_child_reaped_by_the_system_still_counts():
    import signal

    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped at exit: waitpid finds none
    try:
        out = fork_map(_square_with_pid, [1, 2])
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert [v for v, _ in out] == [1, 4] and out[1][1] != PARENT


def _bad_third(x: int) -> int:
    if x >= 3:
        raise ValueError(f"bad row {x}")
    return x


def test_the_first_error_in_row_order_is_raised():
    with pytest.raises(ValueError, match="bad row 3"):
        fork_map(_bad_third, [1, 2, 3, 4])


def _bad_first(x: int) -> int:
    if x == 1:
        raise KeyError("first chunk")
    return x


def test_an_error_in_the_callers_chunk_leaves_no_child_behind(monkeypatch):
    forked: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    with pytest.raises(KeyError, match="first chunk"):
        fork_map(_bad_first, [1, 2, 3])
    assert len(forked) == 2
    for pid in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already


def test_chunks_cover_the_rows_once_in_order():
    assert chunk_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert chunk_bounds(2, 5) == [(0, 1), (1, 2)]
    assert chunk_bounds(0, 4) == [(0, 0)]
    for rows, parts in ((20000, 2), (4001, 2), (9, 9)):
        bounds = chunk_bounds(rows, parts)
        assert [b - a for a, b in bounds] and bounds[0][0] == 0 and bounds[-1][1] == rows
        assert all(bounds[k][1] == bounds[k + 1][0] for k in range(len(bounds) - 1))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_workers_are_bounded_by_rows_and_cpus(monkeypatch):
    import threading

    monkeypatch.setattr(workers, "available_cpus", lambda: 8)
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # whatever threads other tests left
    per = workers.MIN_ROWS_PER_WORKER
    assert plan_workers(per - 1, 0) == 1
    assert plan_workers(3 * per, 0) == 3
    assert plan_workers(100 * per, None) == 8
    assert plan_workers(100 * per, 2) == 2
    assert plan_workers(100 * per, 1) == 1
    with pytest.raises(ValueError, match="workers must be >= 0"):
        plan_workers(100, -1)


def test_the_automatic_choice_does_not_fork_a_process_with_threads(monkeypatch):
    import threading

    monkeypatch.setattr(workers, "available_cpus", lambda: 8)
    monkeypatch.setattr(threading, "active_count", lambda: 3)
    per = workers.MIN_ROWS_PER_WORKER
    assert plan_workers(100 * per, 0) == 1
    assert plan_workers(100 * per, 4) == 4  # asked for explicitly


@pytest.mark.parametrize(
    ("cpu_max", "expected"), [("max 100000\n", None), ("200000 100000\n", 2), ("50000 100000\n", 1)]
)
def test_a_cgroup_cpu_quota_bounds_the_cpus(tmp_path, monkeypatch, cpu_max, expected):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", path)
    monkeypatch.setattr(workers, "CGROUP_V1_CPU", tmp_path / "absent")
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus() == (affinity if expected is None else min(affinity, expected))


@pytest.mark.parametrize(("quota_us", "expected"), [("-1", None), ("300000", 3), ("20000", 1)])
def test_a_cgroup_v1_quota_bounds_the_cpus(tmp_path, monkeypatch, quota_us, expected):
    (tmp_path / "cpu.cfs_quota_us").write_text(quota_us + "\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", tmp_path / "absent")
    monkeypatch.setattr(workers, "CGROUP_V1_CPU", tmp_path)
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus() == (affinity if expected is None else min(affinity, expected))


def test_a_missing_or_odd_cgroup_file_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", tmp_path / "absent")
    monkeypatch.setattr(workers, "CGROUP_V1_CPU", tmp_path / "absent")
    assert available_cpus() == len(os.sched_getaffinity(0))
    odd = tmp_path / "cpu.max"
    odd.write_text("garbage")
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", odd)
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_no_fork_off_linux(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "platform", "darwin")
    assert plan_workers(100 * workers.MIN_ROWS_PER_WORKER, 4) == 1


_FAULTS = """
import resource, sys
import numpy as np
from energaizer.workers import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def columns():  # 40 columns of 4 MiB, written, then freed: what a batch's stages do
    cols = [np.ones(2**19) for _ in range(40)]
    del cols
columns()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
columns()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator settings")
def test_freed_columns_are_reused_not_faulted_in_again():
    import subprocess
    import sys

    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        )
        applied, count = out.stdout.split()
        return applied, int(count)

    applied, kept = faults("keep")
    _, default = faults("default")
    pages = 40 * 2**22 // os.sysconf("SC_PAGE_SIZE")
    assert applied == "True"
    assert default > pages // 4  # by default much of the second batch of columns faults in again (~half)
    assert kept < pages // 40  # kept: the first batch's pages serve the second (~none fault)


def test_batch_settings_pause_the_collector_and_restore_it(monkeypatch):
    import gc

    from energaizer.workers import batch_settings

    kept = []
    monkeypatch.setattr(workers, "keep_freed_memory", lambda: kept.append(True) or True)
    assert gc.isenabled()
    with batch_settings():
        assert not gc.isenabled() and kept == [True]
        assert fork_map(lambda _: gc.isenabled(), [0, 1]) == [False, False]  # the forked workers inherit it
    assert gc.isenabled()
    gc.disable()
    try:
        with batch_settings():
            pass
        assert not gc.isenabled()  # a caller that had paused it keeps it paused
    finally:
        gc.enable()
    with pytest.raises(KeyError), batch_settings():
        raise KeyError("a bad row")
    assert gc.isenabled()  # restored when the batch raises too
