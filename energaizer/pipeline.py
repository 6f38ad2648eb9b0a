"""The orchestrator: workload -> kernels -> timing -> power -> energy, for N (workload, GPU) rows at once.

The only module that calls every stage; each stage imports only the ones below it (``.importlinter``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from energaizer.catalog import get_model
from energaizer.catalog.schema import GPUSpec, ModelArchitecture
from energaizer.energy.breakdown import energy_breakdown, op_breakdown, per_row
from energaizer.errors import InvalidInputError
from energaizer.hardware import GpuTable, precision_fallback
from energaizer.io.layout import check_knobs
from energaizer.kernels.cnn import add_cnn
from energaizer.kernels.ops import OP_NAMES, PHASES, Kind, Phase
from energaizer.kernels.params import RowParams, build_row_params
from energaizer.kernels.table import KernelTable, KernelTableBuilder
from energaizer.kernels.transformer import add_inference, add_training, microbatch
from energaizer.memory_plan import MemoryPlan, choose_training_layout, plan_memory
from energaizer.power.model import gap_power, solve_power_window, solve_uncapped
from energaizer.profile import CalibrationProfile
from energaizer.result import EstimateBatch, OpFigures
from energaizer.timing.host import host_gaps
from energaizer.timing.kernel_time import KernelDevice
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


def _knobs(
    workloads: list[Workload], hw: GpuTable, gi: np.ndarray, strict: bool
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """The requested clock and power limit of every row (the GPU's boost clock and default limit where
    the workload sets none), and the rows whose knob is outside their GPU's range: ``strict`` raises
    the reader's error for the first, else each gets the error as its reason (the row is infeasible:
    the GPU cannot be set so; its figures come from the GPU's defaults and are discarded)."""
    clock = np.array([w.frequency_mhz or np.nan for w in workloads], dtype=np.float64)
    lim = np.array([w.power_limit_w or np.nan for w in workloads], dtype=np.float64)
    max_clock, min_clock = hw.max_clock_mhz[gi], hw.min_clock_mhz[gi]
    lo, hi = hw.power_limit_min_w[gi], hw.power_limit_max_w[gi]
    bad_clock = ~np.isnan(clock) & ((clock > max_clock + 0.5) | (clock < min_clock - 0.5))
    bad_l = ~np.isnan(lim) & ((lim > hi + 0.5) | (lim < lo - 0.5))
    bad = bad_clock | bad_l
    outside: dict[int, str] = {}
    for i in np.flatnonzero(bad).tolist():  # the reader's message (the same ranges, from GPUSpec)
        try:
            check_knobs(workloads[i], hw.specs[gi[i]])
        except InvalidInputError as exc:
            if strict:
                raise
            outside[i] = str(exc)
    clock, lim = np.where(bad_clock, np.nan, clock), np.where(bad_l, np.nan, lim)
    return (
        np.where(np.isnan(clock), max_clock, clock),
        np.where(np.isnan(lim), hw.power_limit_default_w[gi], lim),
        outside,
    )


def _check_layout(workloads: list[Workload], archs: list[ModelArchitecture], p) -> None:
    """Tensor parallelism splits the attention heads: it must divide them (as vLLM and Megatron check).
    A scoring pass needs a vocabulary to project the prompt onto."""
    no_vocab = (p.prompt_logits > 0) & (p.is_cnn | (p.vocab <= 0))
    if no_vocab.any():
        i = int(np.argmax(no_vocab))
        raise InvalidInputError(
            "prompt_logits", f"{archs[i].id} has no vocabulary to project the prompt onto (a vision model)"
        )
    explicit = np.array([w.task == "inference" or bool(w.tensor_parallel) for w in workloads], dtype=bool)
    bad = explicit & ~p.is_cnn & (p.heads > 0) & (np.mod(p.heads, p.tp) != 0)
    if bad.any():
        i = int(np.argmax(bad))
        heads, tp = int(p.heads[i]), int(p.tp[i])
        field = "tensor_parallel" if workloads[i].tensor_parallel else "gpu_count"
        allowed = [str(d) for d in range(1, heads + 1) if heads % d == 0]
        raise InvalidInputError(
            field,
            f"tensor parallelism over {tp} GPUs must divide {archs[i].id}'s {heads} attention heads",
            allowed,
        )


def _layout(p, train_rows: np.ndarray) -> dict[str, np.ndarray]:
    """The parallel layout of every row (training-only keys are NaN on inference rows)."""
    n = p.tp.shape[0]
    nan = np.full(n, np.nan)
    mb, accum, rc = nan.copy(), nan.copy(), nan.copy()
    if train_rows.size:
        mb[train_rows], accum[train_rows] = microbatch(p, train_rows)
        rc[train_rows] = p.recompute[train_rows]
    training = p.training
    return {
        "tensor_parallel": p.tp.copy(),
        "data_parallel": np.where(training, p.dp, p.engines),
        "expert_parallel": np.maximum(p.ep, 1.0),
        "micro_batch_sequences": mb,
        "gradient_accumulation_steps": accum,
        "activation_recomputation": rc,
    }


def _power_windows(kt, p) -> tuple[np.ndarray, int]:
    """The power controller's window of every kernel (:func:`solve_power_window`): one per row and
    phase, the phases of a step following each other faster than the controller reacts are one. A
    current serving engine (vLLM V1) schedules new prompts' prefill chunks into its decode steps, so
    its prefill and decode share a window; a legacy engine and eager code run them as separate passes.
    """
    nph = len(PHASES)
    r = kt.row
    chunked = (p.eager_dispatch[r] == 0) & (p.legacy_engine[r] == 0) & ~p.training[r]
    phase = np.where(chunked & (kt.phase == Phase.PREFILL), Phase.DECODE, kt.phase).astype(np.int64)
    key = r.astype(np.int64) * nph + phase
    uniq, window = np.unique(key, return_inverse=True)
    return window, int(uniq.size)


@dataclass(frozen=True)
class Prepared:
    """What :func:`run` computes before the calibration profile enters (:func:`prepare`): the rows' knobs,
    parameters, memory plan and kernel table, each kernel's math unit and power window. A fit evaluates
    many profiles on the same rows: it prepares them once and :func:`solve` s each profile. Read-only:
    :func:`solve` never changes it."""

    workloads: list[Workload]
    specs: list[GPUSpec]
    hw: GpuTable
    gi: np.ndarray  # each row's GPU in ``hw``
    clock_mhz: np.ndarray  # requested (boost where none)
    power_limit_w: np.ndarray  # requested (the default where none)
    outside: dict[int, str]  # rows whose knob is outside their GPU's range: the error
    p: RowParams
    mem: MemoryPlan
    kt: KernelTable
    dev: KernelDevice
    window: np.ndarray  # each kernel's power window
    n_windows: int
    passes: np.ndarray
    decode_steps: np.ndarray
    train_rows: np.ndarray
    reason: list[str]  # the memory plan's, with the explicit precision fallbacks


def run(
    workloads: list[Workload], specs: list[GPUSpec], prof: CalibrationProfile, strict_knobs: bool = True
) -> EstimateBatch:
    """Estimate ``workloads[i]`` on ``specs[i]`` for every i with calibration profile ``prof``:
    :func:`solve` of :func:`prepare`.

    A what-if clock or power limit outside a row's GPU range raises :class:`InvalidInputError`, or with
    ``strict_knobs`` False makes that row infeasible, the error its reason (one workload asked of
    several GPU types: the types that cannot be set so are out, the others estimated).
    """
    return solve(prepare(workloads, specs, strict_knobs), prof)


def prepare(workloads: list[Workload], specs: list[GPUSpec], strict_knobs: bool = True) -> Prepared:
    """The profile-free stages of :func:`run`: checks the what-if clock and power limit against each GPU,
    builds the row parameters, plans memory (feasibility, the concurrency that fits), emits the kernel
    table of every feasible row and gives each kernel its math unit and power window."""
    n = len(workloads)
    archs = _architectures(workloads)
    hw, gi = _gpu_index(specs)
    clock_mhz, power_limit_w, outside = _knobs(workloads, hw, gi, strict_knobs)
    p = build_row_params(workloads, specs, archs)
    _check_layout(workloads, archs, p)
    fixed_tp = np.array([float(w.tensor_parallel or 0) for w in workloads])
    choose_training_layout(p, archs, hw, gi, fixed_tp)
    mem = plan_memory(p, archs, hw, gi)
    for i, why in outside.items():  # not to be run (no kernels), whatever its memory
        mem.feasible[i] = False
        mem.reason[i] = why

    builder = KernelTableBuilder()
    rows = np.arange(n)
    tr = ~p.is_cnn & mem.feasible
    inf_rows = rows[tr & ~p.training]
    add_inference(builder, p, inf_rows, mem.concurrency[inf_rows])
    train_rows = rows[tr & p.training]
    add_training(builder, p, train_rows)
    passes = np.zeros(n)
    ir = inf_rows
    decode_steps = np.zeros(n)
    passes[ir] = np.ceil(p.requests[ir] / mem.concurrency[ir])
    decode_steps[ir] = p.requests[ir] * p.output_tokens[ir] / mem.concurrency[ir]
    if train_rows.size:
        _, n_mb = microbatch(p, train_rows)
        passes[train_rows] = p.steps[train_rows] * n_mb
    cnn_rows = rows[p.is_cnn & mem.feasible]
    if cnn_rows.size:
        passes[cnn_rows] = add_cnn(builder, p, cnn_rows, [archs[r].cnn for r in cnn_rows.tolist()])
    kt = builder.build()
    kt.eager = p.eager_dispatch[kt.row] > 0

    # Per-kernel device columns: the math unit and its peak for the row's precision.
    peak_row = np.empty(n)
    tensor_row = np.empty(n, dtype=bool)
    math_bytes_row = np.empty(n)
    peaks: dict[tuple[int, str], tuple[float, bool, float]] = {}
    notes: dict[tuple[int, str], str] = {}
    reason = list(mem.reason)
    for i, w in enumerate(workloads):
        prec = w.precision if w.task == "inference" or w.precision in ("fp32", "tf32") else "bf16"
        asked = prec
        if prec == "fp32" and archs[i].arch_type == "cnn":
            prec = "tf32"  # cuDNN convolutions default to TF32 tensor cores where the GPU has them
        key = (int(gi[i]), prec)
        if key not in peaks:
            peaks[key] = (*hw.peak(*key), hw.math_bytes(*key))
            notes[key] = "" if prec != asked else precision_fallback(hw.specs[key[0]], prec)
        peak_row[i], tensor_row[i], math_bytes_row[i] = peaks[key]
        if mem.feasible[i] and notes[key]:
            reason[i] = notes[key]  # an explicit fallback: the GPU cannot run this precision's math
    r = kt.row
    dev = KernelDevice(g=gi[r], peak=peak_row[r], tensor=tensor_row[r], math_bytes=math_bytes_row[r])
    window, n_win = _power_windows(kt, p)
    return Prepared(
        workloads,
        specs,
        hw,
        gi,
        clock_mhz,
        power_limit_w,
        outside,
        p,
        mem,
        kt,
        dev,
        window,
        n_win,
        passes,
        decode_steps,
        train_rows,
        reason,
    )


def solve(prep: Prepared, prof: CalibrationProfile) -> EstimateBatch:
    """The stages of :func:`run` that the calibration profile sets, on prepared rows: solves each kernel's
    operating point (clock under the power cap, time, power), adds the host time between kernels and
    passes, and sums per row: duration, energy and its breakdown, the time by phase and the energy and
    time by operation. Infeasible rows get NaN figures and a reason."""
    workloads, specs, hw, gi = prep.workloads, prep.specs, prep.hw, prep.gi
    p, mem, kt, dev = prep.p, prep.mem, prep.kt, prep.dev
    n = len(workloads)
    clock_mhz, outside, window, n_win = prep.clock_mhz, prep.outside, prep.window, prep.n_windows
    passes, decode_steps, train_rows = prep.passes, prep.decode_steps, prep.train_rows
    power_limit_w = prep.power_limit_w.copy()  # the rows whose knob is outside get the one asked for
    reason = list(prep.reason)
    r = kt.row
    # host waits inside each window at the requested clock (the window's share of its row's waits)
    uncapped = solve_uncapped(kt, dev, clock_mhz[r], hw, prof)
    t_req = kt.count * uncapped.timing.t_exec
    gap_req = host_gaps(kt, t_req, p, passes, decode_steps, mem.concurrency, prof)
    exec_req = per_row(kt, t_req, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(exec_req[r] > 0, t_req / exec_req[r], 0.0)
    wait_s = np.bincount(window, weights=share * gap_req[r], minlength=n_win)
    wait_w = np.zeros(n_win)
    gap_req_w = gap_power(clock_mhz, gi, hw, prof)  # per row, at the requested clock
    wait_w[window] = gap_req_w[r]
    win_gpu = np.zeros(n_win, dtype=gi.dtype)
    win_gpu[window] = gi[r]
    op = solve_power_window(
        kt, dev, clock_mhz[r], power_limit_w[r], window, hw, prof, wait_s, wait_w, uncapped, win_gpu
    )

    cnt = kt.count
    t_exec = cnt * op.timing.t_exec
    is_comm = kt.kind == Kind.COMM
    exec_s = per_row(kt, t_exec, n)
    gap_s = host_gaps(kt, t_exec, p, passes, decode_steps, mem.concurrency, prof)
    duration = exec_s + gap_s
    gpus = p.gpu_count
    # the host waits run at their window's clock (lowered with its kernels under the cap): per row, the
    # waits' power over its windows, weighted by each window's share of the row's waits
    win_clock = np.zeros(n_win)
    win_clock[window] = op.clock_mhz
    win_row = np.zeros(n_win, dtype=np.int64)
    win_row[window] = r
    wait_row = np.bincount(win_row, weights=wait_s, minlength=n)
    wait_j = np.bincount(win_row, weights=wait_s * gap_power(win_clock, win_gpu, hw, prof), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap_w = np.where(wait_row > 0, wait_j / wait_row, gap_req_w)
    energy, breakdown = energy_breakdown(kt, t_exec, op.power, gap_w, gap_s, gpus, n)
    # The windows were solved with the host waits of the requested clock; a capped (slower) GPU hides more
    # of an eager host's dispatch, so a row can end a little above its limit: its board then draws the
    # limit, the kernels' power scaled down (as a window still over the limit at the minimum clock does).
    budget = power_limit_w * gpus * duration
    over = energy > budget
    if over.any():
        gap_j = breakdown["overhead"]
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(over, np.clip((budget - gap_j) / (energy - gap_j), 0.0, 1.0), 1.0)
        op = replace(op, power=op.power.scaled(scale[r]))
        energy, breakdown = energy_breakdown(kt, t_exec, op.power, gap_w, gap_s, gpus, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.where(duration > 0, energy / duration, 0.0)
        effective_mhz = np.where(exec_s > 0, per_row(kt, op.clock_mhz * t_exec, n) / exec_s, clock_mhz)
        out_tokens = p.requests * p.output_tokens
        epot = np.where(~p.training & (out_tokens > 0), energy / out_tokens, np.nan)
    time_breakdown = {
        name: per_row(kt, np.where(kt.phase == i, t_exec, 0.0), n) for i, name in enumerate(PHASES)
    }
    time_breakdown["communication"] = per_row(kt, np.where(is_comm, t_exec, 0.0), n)
    time_breakdown["overhead"] = gap_s
    op_names, op_energy, op_seconds = op_breakdown(kt, t_exec, op.power, gpus, n)
    feasible = mem.feasible.copy()
    # a figure out of any physical range (a user catalog's 1e300 GB/s, a profile's 1e-300 efficiency) can
    # give an infinite or NaN estimate: no estimate, said so, never a "feasible" row of null numbers
    unfinished = feasible & ~(np.isfinite(energy) & np.isfinite(duration))
    for i in np.flatnonzero(unfinished).tolist():
        feasible[i] = False
        reason[i] = (
            f"no finite estimate (energy {energy[i]:g} J, duration {duration[i]:g} s): a figure of "
            f"{specs[i].id} or of the calibration profile is out of its physical range"
        )
    zero = ~feasible
    for i in outside:  # the knobs asked for, which the GPU cannot be set to
        effective_mhz[i] = workloads[i].frequency_mhz or effective_mhz[i]
        power_limit_w[i] = workloads[i].power_limit_w or power_limit_w[i]
    for arr in (energy, duration, power, *breakdown.values()):
        arr[zero] = np.nan
    op_energy[zero] = np.nan
    op_seconds[zero] = np.nan
    return EstimateBatch(
        gpu=[s.id for s in specs],
        energy_joules=energy,
        duration_seconds=duration,
        average_power_watts=power,
        energy_per_output_token_joules=np.where(zero, np.nan, epot),
        breakdown=breakdown,
        feasible=feasible,
        reason=reason,
        gpu_count=gpus.astype(np.int64),
        frequency_mhz=effective_mhz,
        power_limit_w=power_limit_w,
        memory_required_gb=mem.required_gb.copy(),
        kernel_launches=per_row(kt, cnt, n),
        time_breakdown=time_breakdown,
        ops=OpFigures(names=op_names, energy_joules=op_energy, duration_seconds=op_seconds),
        layout=_layout(p, train_rows),
    )


def concat_batches(batches: list[EstimateBatch]) -> EstimateBatch:
    """The batches' rows one after another, as one :func:`run` over all their rows returns them: the ops
    are the union of theirs (in the kernels' op order), an op a batch lacks 0 on its feasible rows and NaN
    on its infeasible ones; a layout key a batch lacks is NaN."""
    if len(batches) == 1:
        return batches[0]
    index = {name: j for j, name in enumerate(OP_NAMES)}
    used = sorted({name for b in batches for name in b.ops.names}, key=index.__getitem__)
    col = {name: j for j, name in enumerate(used)}

    def ops_of(b: EstimateBatch, figures: np.ndarray) -> np.ndarray:
        out = np.zeros((len(b), len(used)))
        out[~b.feasible] = np.nan
        out[:, [col[name] for name in b.ops.names]] = figures
        return out

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays)

    def cat_keys(dicts: list[dict[str, np.ndarray]], sizes: list[int]) -> dict[str, np.ndarray]:
        keys = list(dict.fromkeys(k for d in dicts for k in d))
        return {
            k: cat([d.get(k, np.full(m, np.nan)) for d, m in zip(dicts, sizes, strict=True)]) for k in keys
        }

    sizes = [len(b) for b in batches]
    return EstimateBatch(
        gpu=[g for b in batches for g in b.gpu],
        energy_joules=cat([b.energy_joules for b in batches]),
        duration_seconds=cat([b.duration_seconds for b in batches]),
        average_power_watts=cat([b.average_power_watts for b in batches]),
        energy_per_output_token_joules=cat([b.energy_per_output_token_joules for b in batches]),
        breakdown=cat_keys([b.breakdown for b in batches], sizes),
        feasible=cat([b.feasible for b in batches]),
        reason=[r for b in batches for r in b.reason],
        gpu_count=cat([b.gpu_count for b in batches]),
        frequency_mhz=cat([b.frequency_mhz for b in batches]),
        power_limit_w=cat([b.power_limit_w for b in batches]),
        memory_required_gb=cat([b.memory_required_gb for b in batches]),
        kernel_launches=cat([b.kernel_launches for b in batches]),
        time_breakdown=cat_keys([b.time_breakdown for b in batches], sizes),
        ops=OpFigures(
            names=tuple(used),
            energy_joules=cat([ops_of(b, b.ops.energy_joules) for b in batches]),
            duration_seconds=cat([ops_of(b, b.ops.duration_seconds) for b in batches]),
        ),
        layout=cat_keys([b.layout for b in batches], sizes),
    )
