"""The estimator pipeline: workload spec -> kernels -> timeline -> power -> energy, for N rows at once."""

from __future__ import annotations

import numpy as np

from energaizer.calibration.profile import CalibrationProfile
from energaizer.catalog import get_model
from energaizer.catalog.schema import GPUSpec, ModelArchitecture
from energaizer.energy.memory import plan_memory
from energaizer.errors import InvalidInputError
from energaizer.kernels.cnn import add_cnn
from energaizer.kernels.params import RowParams, build_row_params
from energaizer.kernels.table import COMM, PHASES, KernelTable, KernelTableBuilder
from energaizer.kernels.transformer import add_inference, add_training, microbatch
from energaizer.power.model import gap_power, solve_operating_point
from energaizer.result import BREAKDOWN_KEYS, EstimateBatch
from energaizer.timeline.hardware import GpuTable
from energaizer.timeline.kernel_time import KernelDevice
from energaizer.workload import Workload


def _architectures(workloads: list[Workload]) -> list[ModelArchitecture]:
    cache: dict[str, ModelArchitecture] = {}
    out = []
    for w in workloads:
        if w.architecture is not None:
            out.append(w.architecture)
            continue
        assert w.model is not None
        key = w.model.lower()
        if key not in cache:
            cache[key] = get_model(w.model)
        out.append(cache[key])
    return out


def _gpu_index(specs: list[GPUSpec]) -> tuple[GpuTable, np.ndarray]:
    distinct: dict[int, int] = {}
    uniq: list[GPUSpec] = []
    idx = np.empty(len(specs), dtype=np.int64)
    for i, s in enumerate(specs):
        key = id(s)
        if key not in distinct:
            distinct[key] = len(uniq)
            uniq.append(s)
        idx[i] = distinct[key]
    return GpuTable.from_specs(uniq), idx


def _knobs(workloads: list[Workload], hw: GpuTable, gi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.array([w.frequency_mhz or np.nan for w in workloads], dtype=np.float64)
    lim = np.array([w.power_limit_w or np.nan for w in workloads], dtype=np.float64)
    f_max, f_min = hw.f_max[gi], hw.f_min[gi]
    lo, hi = hw.limit_min[gi], hw.limit_max[gi]
    bad_f = ~np.isnan(f) & ((f > f_max + 0.5) | (f < f_min - 0.5))
    if bad_f.any():
        i = int(np.argmax(bad_f))
        raise InvalidInputError(
            "frequency_mhz",
            f"{f[i]:g} MHz is outside {hw.specs[gi[i]].id}'s clock range {f_min[i]:g}-{f_max[i]:g} MHz",
        )
    bad_l = ~np.isnan(lim) & ((lim > hi + 0.5) | (lim < lo - 0.5))
    if bad_l.any():
        i = int(np.argmax(bad_l))
        raise InvalidInputError(
            "power_limit_w",
            f"{lim[i]:g} W is outside {hw.specs[gi[i]].id}'s power-limit range {lo[i]:g}-{hi[i]:g} W",
        )
    return np.where(np.isnan(f), f_max, f), np.where(np.isnan(lim), hw.limit_default[gi], lim)


def host_gaps(
    kt: KernelTable,
    t_exec: np.ndarray,
    p: RowParams,
    passes: np.ndarray,
    decode_steps: np.ndarray,
    batch: np.ndarray,
    prof: CalibrationProfile,
) -> np.ndarray:
    """Seconds per row during which the GPU waits for the host.

    Eager execution: the host dispatches kernels one by one while the GPU runs ahead, so each phase
    takes max(GPU time, launches x dispatch cost) plus ``dispatch_overlap_loss`` x the smaller of the
    two (the overlap is imperfect; code that synchronises every layer does not overlap at all), plus
    a fixed gap per forward pass (and per decode step: ``generate()`` runs one pass per token). A
    serving engine replays CUDA graphs and spends host time between decode steps (scheduling,
    sampling) that grows with the running batch.
    """
    n = passes.shape[0]
    nph = len(PHASES)
    key = kt.row * nph + kt.phase
    exec_rp = np.bincount(key, weights=t_exec, minlength=n * nph).reshape(n, nph)
    launch_rp = np.bincount(key, weights=kt.count, minlength=n * nph).reshape(n, nph)
    dispatch_rp = launch_rp * prof.launch_overhead_us * 1e-6
    # Code that synchronises every layer serialises dispatch and GPU work; otherwise they overlap.
    loss = np.where(p.host_syncs > 0, 1.0, prof.dispatch_overlap_loss)[:, None]
    exposed = np.maximum(dispatch_rp - exec_rp, 0.0) + loss * np.minimum(dispatch_rp, exec_rp)
    dispatch_wait = exposed.sum(axis=1)
    eager = p.eager_dispatch > 0
    per_seq_us = np.where(
        p.legacy_engine > 0, prof.legacy_decode_seq_overhead_us, prof.decode_seq_overhead_us
    )
    # A legacy engine also hands every step to each extra tensor-parallel worker process (RPC).
    per_worker_ms = np.where(p.legacy_engine > 0, prof.legacy_worker_overhead_ms * (p.tp - 1.0), 0.0)
    per_step_s = (prof.decode_step_overhead_ms + per_worker_ms + per_seq_us * 1e-3 * batch) * 1e-3
    pass_s = prof.pass_overhead_ms * 1e-3
    return np.where(
        eager,
        dispatch_wait + (passes + decode_steps) * pass_s,
        passes * pass_s + decode_steps * per_step_s,
    )


def run(workloads: list[Workload], specs: list[GPUSpec], prof: CalibrationProfile) -> EstimateBatch:
    n = len(workloads)
    archs = _architectures(workloads)
    hw, gi = _gpu_index(specs)
    f_req, limit = _knobs(workloads, hw, gi)
    p = build_row_params(workloads, specs, archs)
    mem = plan_memory(p, archs, hw, gi)

    builder = KernelTableBuilder()
    rows = np.arange(n)
    tr = (p.is_cnn == 0) & mem.feasible
    inf_rows = rows[tr & (p.training == 0)]
    add_inference(builder, p, inf_rows, mem.batch[inf_rows])
    train_rows = rows[tr & (p.training > 0)]
    add_training(builder, p, train_rows)
    passes = np.zeros(n)
    ir = inf_rows
    decode_steps = np.zeros(n)
    passes[ir] = np.ceil(p.requests[ir] / mem.batch[ir])
    decode_steps[ir] = p.requests[ir] * p.output_tokens[ir] / mem.batch[ir]
    if train_rows.size:
        _, n_mb = microbatch(p, train_rows)
        passes[train_rows] = p.steps[train_rows] * n_mb
    cnn_rows = rows[(p.is_cnn > 0) & mem.feasible]
    if cnn_rows.size:
        passes[cnn_rows] = add_cnn(builder, p, cnn_rows, [archs[r].cnn for r in cnn_rows.tolist()])
    kt = builder.build()

    # Per-kernel device columns: the math unit and its peak for the row's precision.
    peak_row = np.empty(n)
    tensor_row = np.empty(n, dtype=bool)
    peaks: dict[tuple[int, str], tuple[float, bool]] = {}
    for i, w in enumerate(workloads):
        prec = w.precision if w.task == "inference" or w.precision in ("fp32", "tf32") else "bf16"
        if prec == "fp32" and archs[i].arch_type == "cnn":
            prec = "tf32"  # cuDNN convolutions default to TF32 tensor cores where the GPU has them
        key = (int(gi[i]), prec)
        if key not in peaks:
            peaks[key] = hw.peak(*key)
        peak_row[i], tensor_row[i] = peaks[key]
    r = kt.row
    dev = KernelDevice(g=gi[r], peak=peak_row[r], tensor=tensor_row[r])
    op = solve_operating_point(kt, dev, f_req[r], limit[r], hw, prof)

    cnt = kt.count
    t_exec = cnt * op.timing.t_exec
    is_comm = kt.kind == COMM

    def per_row(values: np.ndarray) -> np.ndarray:
        return np.bincount(r, weights=values, minlength=n)

    exec_s = per_row(t_exec)
    gap_s = host_gaps(kt, t_exec, p, passes, decode_steps, mem.batch, prof)
    duration = exec_s + gap_s
    gpus = p.gpu_count
    gap_w = gap_power(f_req, gi, hw, prof)
    breakdown = {
        "static": per_row(op.power.idle * t_exec) * gpus,
        "compute": per_row(np.where(is_comm, 0.0, op.power.compute * t_exec)) * gpus,
        "memory": per_row(np.where(is_comm, 0.0, op.power.memory * t_exec)) * gpus,
        "communication": per_row(np.where(is_comm, (op.power.compute + op.power.memory) * t_exec, 0.0))
        * gpus,
        "overhead": gap_w * gap_s * gpus,
    }
    energy = sum(breakdown[k] for k in BREAKDOWN_KEYS)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.where(duration > 0, energy / duration, 0.0)
        f_eff = np.where(exec_s > 0, per_row(op.f * t_exec) / exec_s, f_req)
        out_tokens = p.requests * p.output_tokens
        epot = np.where((p.training == 0) & (out_tokens > 0), energy / out_tokens, np.nan)
    time_breakdown = {name: per_row(np.where(kt.phase == i, t_exec, 0.0)) for i, name in enumerate(PHASES)}
    time_breakdown["communication"] = per_row(np.where(is_comm, t_exec, 0.0))
    time_breakdown["overhead"] = gap_s
    feasible = mem.feasible.copy()
    zero = ~feasible
    for arr in (energy, duration, power, *breakdown.values()):
        arr[zero] = np.nan
    return EstimateBatch(
        gpu=[s.id for s in specs],
        energy_joules=energy,
        duration_seconds=duration,
        average_power_watts=power,
        energy_per_output_token_joules=np.where(zero, np.nan, epot),
        breakdown=breakdown,
        feasible=feasible,
        reason=mem.reason,
        gpu_count=gpus.astype(np.int64),
        frequency_mhz=f_eff,
        power_limit_w=limit,
        memory_required_gb=mem.required_gb,
        kernel_launches=per_row(cnt),
        time_breakdown=time_breakdown,
    )
