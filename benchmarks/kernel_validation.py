#!/usr/bin/env python3
"""Single kernels measured on a real GPU vs the kernel-level model (time, power, clock under the cap).

    python benchmarks/kernel_validation.py [KERNELS_CSV] [--gpu h100-sxm] [--profile PATH]
    python benchmarks/kernel_validation.py ../shared/data/measured/nvml_kernels_hopper.csv

KERNELS_CSV is a ``kernels.csv`` written by ``benchmarks/gpu_measure.py`` (default: the H100 run of
2026-11-22) or the shared ``nvml_kernels_hopper.csv`` (H100 SXM and H200: bf16 GEMMs, a copy, idle
power; its ``gpu`` column picks the catalog GPU of each row). Each measured kernel becomes a one-kernel table (GEMM, fused attention or memory-bound
pass with the measured shape, FLOPs and compulsory bytes) evaluated at the GPU's boost clock and
power limit, as the board ran it. Device time only: no host dispatch, no launch gaps.
"""

from __future__ import annotations

import argparse
import csv
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTable, KernelTableBuilder
from energaizer.power.dvfs import idle_power
from energaizer.power.model import kernel_power, solve_operating_point
from energaizer.profile import load_profile
from energaizer.timing.kernel_time import (
    KernelDevice,
    eager_bytes_in_flight,
    kernel_timing,
    latency_bound_bytes_per_s,
)

DEFAULT_CSV = Path(__file__).resolve().parent / "results" / "h100-nvml-2026-11-22" / "run1" / "kernels.csv"
ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "tf32": 4, "fp32": 4, "fp8": 1}


def kernel_table(name: str, dtype: str, flops: float, nbytes: float) -> KernelTableBuilder:
    b = KernelTableBuilder()
    row, pb = np.zeros(1), ELEMENT_BYTES[dtype]
    if name.startswith("gemm_"):
        m, k, n = (int(x) for x in name.split("_")[1].split("x"))
        out_bytes = 2 if dtype == "fp8" else pb  # fp8 GEMMs write bf16
        b.add(
            row,
            Op.LINEAR,
            Phase.PREFILL,
            1.0,
            m=m,
            n=n,
            k=k,
            flops=2.0 * m * n * k,
            bytes=(m * k + k * n) * pb + m * n * out_bytes,
            precision_bytes=pb,
        )
    elif name.startswith("sdpa_"):
        dims = {key: int(val) for key, val in re.findall(r"(kv|[bhsd])(\d+)", name.split("_")[-1])}
        decode = "causal" not in name
        # decode kernels pack the query heads sharing a KV head into one tile (as the workloads' model)
        group = dims["h"] // dims.get("kv", dims["h"]) if decode else 1
        b.add(
            row,
            Op.ATTENTION,
            Phase.PREFILL,
            1.0,
            m=group if decode else dims["s"],
            n=dims["s"],
            k=dims["d"],
            gemm_group=dims["b"] * dims["h"] // group,
            flops=flops,
            bytes=nbytes,
            precision_bytes=pb,
        )
    else:  # copies, adds, norms and softmaxes measured as PyTorch eager ops
        b.add(
            row,
            Op.ELEMENTWISE,
            Phase.PREFILL,
            1.0,
            fp_flops=flops,
            bytes=nbytes,
            precision_bytes=pb,
            eager=True,
        )
    return b


def measured_kernel(r: dict, hw: GpuTable) -> tuple[KernelTable, KernelDevice]:
    """The one-kernel table of a measured row and the math unit it runs on (the first GPU of ``hw``)."""
    kt = kernel_table(
        r["kernel"], r["dtype"], float(r["flops_per_call"]), float(r["min_dram_bytes_per_call"])
    )
    peak, tensor = hw.peak(0, r["dtype"])
    dev = KernelDevice(g=np.zeros(1, dtype=int), peak=np.full(1, peak), tensor=np.full(1, tensor))
    return kt.build(), dev


SHARED_GPUS = {"NVIDIA H100 80GB HBM3": "h100-sxm", "NVIDIA H200": "h200"}


def shared_rows(path: Path) -> list[dict]:
    """Rows of the shared nvml_kernels_hopper.csv in the kernels.csv layout (idle rows: power only)."""
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            gpu = SHARED_GPUS[r["gpu"]]
            base = {
                "gpu": gpu,
                "average_power_w": r["avg_power_w"],
                "sm_clock_mean_mhz": r["avg_sm_clock_mhz"],
            }
            if r["kind"] == "idle":
                out.append({**base, "kernel": r["workload"], "dtype": ""})
            elif r["kind"] == "gemm":
                m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
                out.append(
                    {
                        **base,
                        "kernel": f"gemm_{m}x{k}x{n}",
                        "dtype": r["precision"],
                        "flops_per_call": 2.0 * m * n * k,
                        "min_dram_bytes_per_call": (m * k + k * n + m * n) * 2,
                        "time_per_call_us": float(r["time_s"]) * 1e6,
                    }
                )
            elif r["kind"] == "copy":
                out.append(
                    {
                        **base,
                        "kernel": "copy",
                        "dtype": "bf16",
                        "flops_per_call": 0.0,
                        "min_dram_bytes_per_call": float(r["bytes"]),
                        "time_per_call_us": float(r["time_s"]) * 1e6,
                    }
                )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()
    prof = load_profile(args.profile)
    with args.csv.open(newline="", encoding="utf-8") as fh:
        shared = "workload" in (fh.readline() or "")
    if shared:
        rows = shared_rows(args.csv)
    else:
        with args.csv.open(newline="", encoding="utf-8") as fh:
            rows = [{**r, "gpu": args.gpu} for r in csv.DictReader(fh)]
    for gpu in dict.fromkeys(r["gpu"] for r in rows):
        score_gpu(gpu, [r for r in rows if r["gpu"] == gpu], prof)
    hbm = [r for r in rows if get_gpu(r["gpu"]).memory_type == "hbm"]
    try:
        ratio, err = fit_dram_energy_ratio(hbm, prof)
    except ValueError:  # no uncapped streaming kernel on an HBM GPU among the rows
        return 0
    specs = {r["gpu"]: get_gpu(r["gpu"]) for r in hbm}
    techs = sorted({s.memory_technology or "hbm2" for s in specs.values()})
    catalog = GpuTable.from_specs(list(specs.values())).dram_energy_ratio[0]
    print(
        f"DRAM energy ratio ({'/'.join(techs)}, x the profile's HBM2 {prof.dram_pj_per_bit:.2f} pJ/bit) that "
        f"the uncapped streaming kernels' power implies: {ratio:.2f} (mean |log error| {100 * err:.1f} %); "
        f"catalog: {catalog:.2f}"
    )
    return 0


def score_gpu(gpu: str, rows: list[dict], prof) -> None:
    hw = GpuTable.from_specs([get_gpu(gpu)])
    print(
        f"{gpu}\n{'kernel':34s} {'dtype':5s} {'time us pred/meas':>22s} {'power W pred/meas':>20s} "
        f"{'clock MHz pred/meas':>20s}"
    )
    err_t, err_p = [], []
    for r in rows:
        if not r["dtype"]:  # idle power at a parked clock (cold) or still at boost (after load)
            f = float(r["sm_clock_mean_mhz"])
            idle = idle_power(np.full(1, f), np.zeros(1, dtype=int), hw, prof)[0]
            print(f"{r['kernel']:34s} idle {idle:6.0f} /{float(r['average_power_w']):5.0f} W at {f:.0f} MHz")
            continue
        kt, dev = measured_kernel(r, hw)
        op = solve_operating_point(
            kt, dev, hw.max_clock_mhz[:1].copy(), hw.power_limit_default_w[:1].copy(), hw, prof
        )
        t, p = op.timing.t_exec[0] * 1e6, op.power.total[0]
        tm, pm = float(r["time_per_call_us"]), float(r["average_power_w"])
        err_t.append(t / tm - 1)
        err_p.append(p / pm - 1)
        print(
            f"{r['kernel']:34s} {r['dtype']:5s} {t:9.1f} /{tm:9.1f} {t / tm - 1:+5.0%} {p:6.0f} /{pm:5.0f} "
            f"{p / pm - 1:+5.0%} {op.clock_mhz[0]:7.0f} /{float(r['sm_clock_mean_mhz']):6.0f}"
        )
    print(
        f"MAPE over {len(err_t)} kernels: time {100 * np.mean(np.abs(err_t)):.1f} %, "
        f"power {100 * np.mean(np.abs(err_p)):.1f} %"
    )
    streaming_fit(rows, hw, prof)
    streaming_energy(rows, hw, prof)
    print()


def streaming_fit(rows: list[dict], hw: GpuTable, prof) -> None:
    """What the streaming kernels (copies, adds) identify: time = fixed + bytes / (share x DRAM peak),
    from the rows whose traffic is at least twice the L2 (smaller ones stay in L2 between calls). With
    two or more sizes the fixed part and the share are both fitted; with one, the share follows from the
    profile's fixed part (``kernel_latency_us`` plus one wave of ``wave_overhead_cycles``)."""
    peak = hw.dram_bytes_per_s[0]
    # the profile's streaming rate of an eager PyTorch kernel at the max clock: Little's law on the SMs'
    # bytes in flight, at most the DRAM share
    in_flight = eager_bytes_in_flight(hw, np.zeros(1, dtype=np.int64), prof)
    little = float(latency_bound_bytes_per_s(in_flight, hw.max_clock_mhz[:1] * 1e6, prof)[0]) / peak
    model_share = min(prof.dram_efficiency, little)
    fixed_profile = prof.kernel_latency_us * 1e-6 + prof.wave_overhead_cycles / (hw.max_clock_mhz[0] * 1e6)
    for kind in ("copy", "add"):
        pts = [
            (float(r["min_dram_bytes_per_call"]), float(r["time_per_call_us"]) * 1e-6)
            for r in rows
            if r["dtype"]
            and r["kernel"].startswith(kind)
            and float(r["min_dram_bytes_per_call"]) >= 2.0 * hw.l2_bytes[0]
        ]
        if not pts:
            continue
        nbytes, secs = np.array(pts).T
        if len(pts) >= 2:
            slope, fixed = np.polyfit(nbytes, secs, 1)
            share = 1.0 / (slope * peak)
            how = f"fitted over {len(pts)} sizes: fixed {fixed * 1e6:.2f} us"
        else:
            share = float(np.mean(nbytes / ((secs - fixed_profile) * peak)))
            how = "one size, with the profile's fixed part"
        print(
            f"streaming {kind} ({how}): {share:.3f} of the DRAM peak; profile: fixed {fixed_profile * 1e6:.2f} us "
            f"(latency {prof.kernel_latency_us:.2f} us + one wave), streaming share {model_share:.3f} "
            f"(bytes in flight {little:.3f}, DRAM share {prof.dram_efficiency:.3f})"
        )


def _streams(r: dict, hw: GpuTable, max_m: int = 8) -> bool:
    """Rows that stream DRAM: copies, adds and weight-streaming GEMMs (M <= ``max_m``) moving at least twice
    the L2 per call (smaller ones stay in L2 between calls or are host-bound)."""
    if not r["dtype"]:
        return False
    name = r["kernel"]
    weights = name.startswith("gemm_") and int(name.split("_")[1].split("x")[0]) <= max_m
    big = float(r["min_dram_bytes_per_call"]) >= 2.0 * hw.l2_bytes[0]
    return big and (name.startswith(("copy", "add")) or weights)


def streaming_energy(rows: list[dict], hw: GpuTable, prof) -> None:
    """DRAM energy per bit the streaming kernels imply beside the profile's other terms: measured power
    minus the profile's idle power at the measured clock and its core power (SM activity, L2, tensor and
    CUDA-core terms at the measured duration), over the bits the kernel moved at its measured rate."""
    implied = []
    for r in (r for r in rows if _streams(r, hw)):
        kt, dev = measured_kernel(r, hw)
        clock = np.full(1, float(r["sm_clock_mean_mhz"]))
        tm = kernel_timing(kt, dev, clock, hw, prof)
        t_meas = float(r["time_per_call_us"]) * 1e-6
        at_meas = tm.t_exec / t_meas  # the same work done in the measured time
        done = replace(
            tm,
            u_tensor=tm.u_tensor * at_meas,
            u_l2=tm.u_l2 * at_meas,
            u_fp=tm.u_fp * at_meas,
            fp_flop_rate=tm.fp_flop_rate * at_meas,
        )
        pw = kernel_power(done, dev, clock, hw, prof)
        dram_w = float(r["average_power_w"]) - pw.idle - pw.compute
        bits_per_s = float(r["min_dram_bytes_per_call"]) * 8.0 / t_meas
        implied.append(float(dram_w[0] / bits_per_s * 1e12))
    if implied:
        print(
            f"streaming power ({len(implied)} kernels) implies {np.mean(implied):.1f} pJ/bit of DRAM energy "
            f"(range {min(implied):.1f}-{max(implied):.1f}) beside the profile's idle and core terms; "
            f"profile: {prof.dram_pj_per_bit * hw.dram_energy_ratio[0]:.1f} pJ/bit for this memory"
        )


def _uncapped_stream(r: dict, hw: GpuTable) -> bool:
    """Streaming rows (copies, adds, GEMMs streaming their weights at M <= 64) below the power cap: measured
    at (nearly) the max clock, so their power is mostly DRAM traffic at a known clock."""
    return _streams(r, hw, max_m=64) and float(r["sm_clock_mean_mhz"]) >= 0.95 * hw.max_clock_mhz[0]


def fit_dram_energy_ratio(rows: list[dict], prof, ratios: np.ndarray | None = None) -> tuple[float, float]:
    """The DRAM energy ratio (x the profile's HBM2 energy per bit) that best predicts the power of the
    uncapped streaming kernels of ``rows`` (each with its ``gpu``), every other term as the profile has it:
    the ratio with the least mean |log(predicted / measured power)|, and that error."""
    ratios = np.round(np.arange(0.40, 1.2001, 0.01), 2) if ratios is None else ratios
    tables = {gpu: GpuTable.from_specs([get_gpu(gpu)]) for gpu in {r["gpu"] for r in rows}}
    cases = [
        (r, tables[r["gpu"]], *measured_kernel(r, tables[r["gpu"]]))
        for r in rows
        if _uncapped_stream(r, tables[r["gpu"]])
    ]
    if not cases:
        raise ValueError("no uncapped streaming kernel among the rows")
    errors = []
    for ratio in ratios:
        err = []
        for r, hw, kt, dev in cases:
            at = replace(hw, dram_energy_ratio=np.full(1, ratio))
            op = solve_operating_point(
                kt, dev, at.max_clock_mhz[:1].copy(), at.power_limit_default_w[:1].copy(), at, prof
            )
            err.append(abs(np.log(op.power.total[0] / float(r["average_power_w"]))))
        errors.append(float(np.mean(err)))
    best = int(np.argmin(errors))
    return float(ratios[best]), errors[best]


if __name__ == "__main__":
    raise SystemExit(main())
