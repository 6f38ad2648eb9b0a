"""Does the model slow down with the SM clock as the GPU does? (The clock is a what-if knob.)

    python benchmarks/clock_sensitivity.py [--profile PROFILE.json] [--max-clock-mhz 1150]

The artifact's DVFS rows run the same 19 eager prefill configurations on an A100-PCIe at 510-1410 MHz.
For each configuration, over the clocks at which it held its locked clock (below ``--max-clock-mhz``: above
it the heavy ones throttle at the 250 W cap), the time per pass is fitted as ``a / f + b``: ``a`` (ms x GHz)
is the work that runs in core cycles, ``b`` (ms) the work that does not (DRAM-bound streams, host waits).
The same fit of the model's time at the same clocks splits it alike, and the model's per-operation times
split it by operation, so the table shows where the model puts clock-bound work the GPU does not (or the
reverse). Last line: the medians of the model / measured ratios of a, of b, and of the slowdown from the
highest to the lowest clock, t(f_min) / t(f_max).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from energaizer.calibration.validate import measured_arrays
from energaizer.estimator import estimate_pairs
from energaizer.io.workload_csv import read_workload_csv
from energaizer.profile import load_profile

DVFS = Path(__file__).resolve().parents[1] / "energaizer" / "data" / "measurements" / "artifact.csv"
SOURCE = "energaizer-artifact-dvfs"
GEMM_OPS = {"qkv_proj", "attn_out", "mlp_up", "mlp_down", "lm_head", "attn_scores", "attn_values"}


def split(inv_ghz: np.ndarray, ms: np.ndarray) -> tuple[float, float]:
    """Least-squares (a, b) of ms = a * inv_ghz + b."""
    a, b = np.linalg.lstsq(np.c_[inv_ghz, np.ones_like(inv_ghz)], ms, rcond=None)[0]
    return float(a), float(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, help="calibration profile (default: the shipped one)")
    ap.add_argument("--max-clock-mhz", type=float, default=1150.0, help="highest clock used in the fit")
    args = ap.parse_args()
    prof = load_profile(args.profile) if args.profile else None
    rows = [r for r in read_workload_csv(DVFS) if r.extra.get("source") == SOURCE]
    pred = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=prof)
    _, measured_s, _ = measured_arrays(rows)
    names = list(pred.ops.names)
    gemm = [j for j, n in enumerate(names) if n in GEMM_OPS]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        inf = r.workload.inference
        name = r.workload.model.split("/")[-1]
        groups[(name, r.workload.precision, inf.batch_size, inf.input_tokens)].append(i)
    print(
        f"{'configuration':30s} {'measured a':>10s} {'b':>7s} | {'model a':>8s} {'b':>7s} | "
        f"{'GEMMs a':>8s} {'other a':>8s} {'other b':>8s} | slowdown measured / model"
    )
    ratios = []
    for key, idx in sorted(groups.items()):
        idx = [i for i in idx if rows[i].workload.frequency_mhz <= args.max_clock_mhz]
        if len(idx) < 4:
            continue
        idx = sorted(idx, key=lambda i: rows[i].workload.frequency_mhz)
        inv = 1000.0 / np.array([rows[i].workload.frequency_mhz for i in idx])
        am, bm = split(inv, measured_s[idx] * 1e3)
        ap_, bp = split(inv, pred.duration_seconds[idx] * 1e3)
        gemm_ms = pred.ops.duration_seconds[np.ix_(idx, gemm)].sum(axis=1) * 1e3
        ga, _ = split(inv, gemm_ms)
        oa, ob = split(inv, pred.ops.duration_seconds[idx].sum(axis=1) * 1e3 - gemm_ms)
        slow_m = measured_s[idx[0]] / measured_s[idx[-1]]
        slow_p = pred.duration_seconds[idx[0]] / pred.duration_seconds[idx[-1]]
        ratios.append((ap_ / am, bp / bm if bm > 0 else np.nan, slow_p / slow_m))
        label = f"{key[0][:12]} {key[1]} b{key[2]} s{key[3]}"
        print(
            f"{label:30s} {am:10.1f} {bm:7.1f} | {ap_:8.1f} {bp:7.1f} | {ga:8.1f} {oa:8.1f} {ob:8.1f} | "
            f"{slow_m:.2f} / {slow_p:.2f}"
        )
    r = np.array(ratios)
    print(
        f"median model / measured: a {np.nanmedian(r[:, 0]):.2f}, b {np.nanmedian(r[:, 1]):.2f}, "
        f"slowdown {np.nanmedian(r[:, 2]):.2f} ({len(r)} configurations)"
    )


if __name__ == "__main__":
    main()
