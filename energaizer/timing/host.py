"""Host time per row: the seconds the GPU waits for the host between and around its kernels."""

from __future__ import annotations

import numpy as np

from energaizer.kernels.ops import PHASES
from energaizer.kernels.params import RowParams
from energaizer.kernels.table import KernelTable
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import kernel_latency_s


def host_gaps(
    kt: KernelTable,
    t_exec: np.ndarray,
    p: RowParams,
    passes: np.ndarray,
    decode_steps: np.ndarray,
    concurrency: np.ndarray,
    prof: CalibrationProfile,
) -> np.ndarray:
    """Seconds per row during which the GPU waits for the host.

    Eager execution: the host dispatches kernels one by one while the GPU runs ahead, so each phase
    takes max(GPU time, launches x dispatch cost) plus ``dispatch_overlap_loss`` x the smaller of the
    two (the overlap is imperfect; code that synchronises every layer does not overlap at all; a
    kernel's fixed launch latency on the device is not part of that share: when the host is the
    slower, each kernel's latency passes while the GPU would wait for the next dispatch anyway), plus
    a fixed gap per forward pass (and per decode step: ``generate()`` runs one pass per token). A
    serving engine replays CUDA graphs and spends host time per decode step (scheduling, sampling)
    that grows with the running batch. A current engine schedules the next step while the GPU runs
    this one (vLLM's async scheduling), so a step takes max(host, GPU) plus ``engine_overlap_loss`` x
    the smaller; a legacy engine (vLLM 0.5) runs them one after the other.
    """
    n = passes.shape[0]
    nph = len(PHASES)
    key = kt.row * nph + kt.phase
    exec_rp = np.bincount(key, weights=t_exec, minlength=n * nph).reshape(n, nph)
    launch_rp = np.bincount(key, weights=kt.count, minlength=n * nph).reshape(n, nph)
    latency_rp = np.bincount(key, weights=kt.count * kernel_latency_s(kt, prof), minlength=n * nph)
    dispatch_rp = launch_rp * prof.launch_overhead_us * 1e-6
    # Code that synchronises every layer serialises dispatch and GPU work; otherwise they overlap.
    syncs = p.host_syncs[:, None].astype(bool)
    loss = np.where(syncs, 1.0, prof.dispatch_overlap_loss)
    body_rp = np.where(syncs, exec_rp, exec_rp - latency_rp.reshape(n, nph))
    exposed = np.maximum(dispatch_rp - exec_rp, 0.0) + loss * np.minimum(dispatch_rp, body_rp)
    dispatch_wait = exposed.sum(axis=1)
    eager = p.eager_dispatch
    per_seq_us = np.where(p.legacy_engine, prof.legacy_decode_seq_overhead_us, prof.decode_seq_overhead_us)
    # A legacy engine also hands every step to each extra tensor-parallel worker process (RPC).
    per_worker_ms = np.where(p.legacy_engine, prof.legacy_worker_overhead_ms * (p.tp - 1.0), 0.0)
    step_ms = np.where(p.legacy_engine, prof.legacy_decode_step_overhead_ms, prof.decode_step_overhead_ms)
    per_step_s = (step_ms + per_worker_ms + per_seq_us * 1e-3 * concurrency) * 1e-3
    pass_s = prof.pass_overhead_ms * 1e-3
    with np.errstate(invalid="ignore", divide="ignore"):
        gpu_step = np.where(decode_steps > 0, exec_rp[:, PHASES.index("decode")] / decode_steps, 0.0)
    overlapped = np.maximum(per_step_s - gpu_step, 0.0) + prof.engine_overlap_loss * np.minimum(
        per_step_s, gpu_step
    )
    step_wait = np.where(p.legacy_engine > 0, per_step_s, overlapped)
    # A legacy engine runs prefills as steps of their own (vLLM 0.5's default scheduler never mixes
    # them with decodes): whenever a sequence finishes and requests wait, the next step admits them.
    legacy_prefill_s = (
        legacy_prefill_steps(passes, decode_steps, concurrency, p) * (step_ms + per_worker_ms) * 1e-3
    )
    return np.where(
        eager,
        dispatch_wait + (passes + decode_steps) * pass_s,
        np.where(p.legacy_engine > 0, legacy_prefill_s, passes * pass_s) + decode_steps * step_wait,
    )


def legacy_prefill_steps(
    passes: np.ndarray, decode_steps: np.ndarray, concurrency: np.ndarray, p: RowParams
) -> np.ndarray:
    """Prefill steps of a legacy engine (vLLM 0.5: a step runs either prefills or decodes).

    With all requests queued, a prefill step follows every decode step in which at least one running
    sequence finished: the c running sequences finish at c / (output tokens) per step (Poisson), so a
    share 1 - exp(-c / output) of the decode steps is followed by one. At least one per admitted batch
    (``passes``: prefill-only serving admits c requests per step), at most one per request."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(p.output_tokens > 0, concurrency / np.maximum(p.output_tokens, 1.0), 0.0)
    steps = decode_steps * -np.expm1(-rate)
    return np.minimum(np.maximum(steps, passes), np.maximum(p.requests, passes))
