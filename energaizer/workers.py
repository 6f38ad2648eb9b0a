"""Splitting a large batch over the machine's CPUs: forked worker processes, results back by pickle.

The estimator's core is vectorised NumPy driven from Python; one process uses one CPU. A batch of tens of
thousands of rows (``energaizer estimate --from-csv``) is cut into contiguous chunks; every chunk but the
first runs in a child forked from the caller (it inherits the parsed inputs, the catalog and the profile,
so nothing is re-imported or re-sent), the first in the caller itself. Rows are independent, so the
chunked result equals the whole one bit for bit.

A chunk whose child fails for any reason (killed, out of memory, an exception) is computed again in the
caller, which then raises what a single process would have raised, in row order. Only ``fork`` on Linux
is used, and only by callers that own their process (the CLI): a server with threads (the operator) keeps
``workers=1``, and the automatic choice forks only a single-threaded process. Such a caller may also run
its batch under :func:`batch_settings` (memory kept for reuse, the cyclic garbage collector paused).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Below this many rows per worker a fork (~10-30 ms with its result's transfer) costs more than it saves.
MIN_ROWS_PER_WORKER = 2000
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1: cpu.cfs_quota_us (-1: none), cpu.cfs_period_us


# glibc's malloc: blocks at or above M_MMAP_THRESHOLD are mapped afresh and unmapped when freed; a free
# top of the heap beyond M_TRIM_THRESHOLD goes back to the kernel (mallopt(3); M_* are its option numbers).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
BATCH_MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's own ceiling for its moving threshold on 64-bit
BATCH_TRIM_THRESHOLD_BYTES = 512 * 2**20


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of returning it to the kernel (glibc only).

    A batch of 20,000 rows allocates and frees NumPy columns of megabytes (the kernel table's, and the
    timing and power of every kernel) many times. By default glibc maps such a block afresh and unmaps it
    when freed, and trims the heap's free top back to the kernel, so every new column faults its pages in
    again: ~140,000 page faults, a sixth of a ``--from-csv`` run's time. Blocks below 32 MiB from the heap
    and a heap kept up to 512 MiB take ~90,000 and 10-15 % less time; the peak memory is the same (the
    kernel counts the pages a process touches, once). For a process that owns its lifetime (the CLI):
    a long-running server keeps the defaults. Returns whether the allocator took the settings."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, BATCH_MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, BATCH_TRIM_THRESHOLD_BYTES)
    )


@contextlib.contextmanager
def batch_settings() -> Iterator[None]:
    """Settings for a large batch run by a process that owns its lifetime (the CLI's ``--from-csv``):
    :func:`keep_freed_memory` (process-wide, and lasting: glibc has no way back to its moving threshold),
    and the cyclic garbage collector paused meanwhile (restored after; forked workers inherit it). A batch
    makes ~10^6 rows, dicts and floats, none in a reference cycle, and each of the collector's full passes
    traces them all again: paused, a 20,000-row run takes 12 % less time at the same peak memory."""
    keep_freed_memory()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, bounded by a cgroup CPU quota (a container's
    ``resources.limits.cpu``; v2, else v1) where one is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota_cpus()
    if quota is not None:
        n = min(n, quota)
    return max(1, n)


def _cgroup_quota_cpus() -> int | None:
    """Whole CPUs of this cgroup's quota (at least 1), or None where no quota is set or readable."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        return None if quota == "max" else max(1, int(quota) // int(period))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((CGROUP_V1_CPU / "cpu.cfs_quota_us").read_text())
        period_us = int((CGROUP_V1_CPU / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else max(1, quota_us // period_us)
    except (OSError, ValueError):
        return None


def plan_workers(rows: int, workers: int | None) -> int:
    """How many processes a batch of ``rows`` uses: ``workers`` (None or 0: as many as
    :func:`available_cpus`, or 1 in a process that runs other threads, where a fork is unsafe), at most
    one per :data:`MIN_ROWS_PER_WORKER` rows, at least 1; 1 off Linux."""
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = one per available CPU), got {workers}")
    if not sys.platform.startswith("linux"):  # macOS frameworks are not fork-safe; Windows cannot fork
        return 1
    if not workers and threading.active_count() > 1:
        return 1
    want = workers if workers else available_cpus()
    return max(1, min(want, rows // MIN_ROWS_PER_WORKER))


def chunk_bounds(rows: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(rows)``, sizes within one."""
    parts = max(1, min(parts, rows)) if rows else 1
    base, extra = divmod(rows, parts)
    bounds, start = [], 0
    for k in range(parts):
        stop = start + base + (1 if k < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def map_chunks(rows: int, workers: int | None, fn: Callable[[tuple[int, int]], R]) -> list[R]:
    """``fn((start, stop))`` over the contiguous parts of ``range(rows)`` that :func:`plan_workers`
    allows, in order (:func:`fork_map`: all but the first in forked children)."""
    return fork_map(fn, chunk_bounds(rows, plan_workers(rows, workers)))


def fork_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``, ``items[1:]`` each in a forked child (their results must pickle;
    ``fn`` need not), ``items[0]`` in this process meanwhile. Where a child fails, or cannot be started
    (a process or file limit, a sandbox that forbids fork), its item is computed here."""
    if len(items) <= 1 or not hasattr(os, "fork"):
        return [fn(x) for x in items]
    for stream in (sys.stdout, sys.stderr):  # what is buffered is written once, not once per child
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    children: list[tuple[int, int] | None] = []  # (pid, read end); None: not started
    try:
        for item in items[1:]:
            children.append(_spawn(fn, item))
        results = [fn(items[0])]
        for k, child in enumerate(children):
            ok, value = (False, None) if child is None else _collect(*child)
            children[k] = None
            results.append(value if ok else fn(items[k + 1]))
        return results
    finally:
        for child in children:  # only where this process raised before collecting them
            if child is not None:
                _reap(*child)


def _spawn(fn: Callable[[T], R], item: T) -> tuple[int, int] | None:
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the child: compute, send, and leave without running the parent's exit handlers
        code = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                data = pickle.dumps((True, fn(item)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:  # the parent recomputes the chunk and raises the error itself
                data = pickle.dumps((False, None))
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, fd: int) -> tuple[bool, object]:
    """A child's ``(ok, result)``; ``(False, None)`` if it died or sent something unreadable."""
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    try:
        _, status = os.waitpid(pid, 0)
        exited = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    except ChildProcessError:  # reaped already (SIGCHLD ignored): the bytes alone tell
        exited = True
    if not data or not exited:
        return False, None
    try:
        return pickle.loads(data)  # our own child's bytes, through a private pipe
    except Exception:
        return False, None


def _reap(pid: int, fd: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
