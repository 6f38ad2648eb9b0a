"""How does a serving step's time grow with the number of running sequences, measured and modelled?

    python benchmarks/decode_step_time.py [--profile PROFILE.json] [--ops MODEL]

ML.ENERGY v3 runs each model at batch sizes 8 to ~900 with the same request mix. For each (model, GPUs,
precision, prompt length) with at least three batch sizes, the time per decode step (duration / (requests x
output tokens / batch), prefill included) is fitted as ``a + s x batch``: ``s`` (us) is what one more
running sequence adds to a step. The same fit of the model's time on the same rows gives its ``s``, and
``--ops MODEL`` splits the model's ``s`` of that model's groups by operation (the per-operation times of
the rows at the smallest and largest batch), so a missing per-sequence cost shows where it is not.
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

V3 = Path(__file__).resolve().parents[1] / "energaizer" / "data" / "measurements" / "mlenergy_v3.csv"


def steps(row) -> float:
    inf = row.workload.inference
    return inf.requests * inf.output_tokens / inf.batch_size


def per_step_ms(pred, rows, j: int) -> dict[str, float]:
    """The model's ms per decode step of row ``j`` by operation, host gaps included."""
    secs = dict(zip(pred.ops.names, pred.ops.duration_seconds[j], strict=True))
    secs["(host gaps)"] = pred.time_breakdown["overhead"][j]
    return {name: s / steps(rows[j]) * 1e3 for name, s in secs.items()}


def slope_us(batch: np.ndarray, step_ms: np.ndarray) -> tuple[float, float]:
    """Least-squares (a ms, s us) of step_ms = a + s * batch."""
    s, a = np.polyfit(batch, step_ms, 1)
    return float(a), float(s * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, help="calibration profile (default: the shipped one)")
    ap.add_argument(
        "--ops", default="", help="split the model's slope by operation for this model (substring)"
    )
    args = ap.parse_args()
    prof = load_profile(args.profile) if args.profile else None
    rows = read_workload_csv(V3)
    pred = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=prof)
    _, measured_s, _ = measured_arrays(rows)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        w = r.workload
        groups[(w.model, w.gpu_count, w.precision, w.inference.input_tokens)].append(i)
    print(
        f"{'model':36s} {'GPUs':>4s} {'prec':>4s} {'batch':>9s} | {'measured a ms':>13s} {'s us':>7s} | "
        f"{'model a ms':>10s} {'s us':>7s} | s model / measured"
    )
    for key, idx in sorted(groups.items()):
        batch = np.array([rows[i].workload.inference.batch_size for i in idx], dtype=float)
        if np.unique(batch).size < 3:
            continue
        n_steps = np.array([steps(rows[i]) for i in idx])
        ma, ms = slope_us(batch, measured_s[idx] / n_steps * 1e3)
        pa, ps = slope_us(batch, pred.duration_seconds[idx] / n_steps * 1e3)
        model, gpus, prec, _ = key
        print(
            f"{model.split('/')[-1][:36]:36s} {gpus:4d} {prec:>4s} {int(batch.min()):4d}-{int(batch.max()):<4d} | "
            f"{ma:13.2f} {ms:7.1f} | {pa:10.2f} {ps:7.1f} | {ps / ms:5.2f}"
        )
        if args.ops and args.ops.lower() in model.lower():
            lo, hi = idx[int(np.argmin(batch))], idx[int(np.argmax(batch))]
            lo_ms, hi_ms = per_step_ms(pred, rows, lo), per_step_ms(pred, rows, hi)
            db = batch.max() - batch.min()
            parts = {n: (hi_ms[n] - lo_ms[n]) / db * 1e3 for n in lo_ms}
            top = sorted(parts.items(), key=lambda kv: -kv[1])
            print(
                "    model s by operation (us): "
                + ", ".join(f"{n} {v:.1f}" for n, v in top if abs(v) >= 0.05)
            )


if __name__ == "__main__":
    main()
