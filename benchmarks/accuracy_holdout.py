"""Accuracy of the shipped profile and of hold-out fits (does the fit generalise?).

    python benchmarks/accuracy_holdout.py [--nfev 250]

Prints, for each hold-out split, the MAPE of energy/time/power on the held-out rows after fitting the
profile on the other rows, next to the in-sample MAPE of the shipped default profile; then the shipped
profile on the never-fitted rows of energaizer/data/holdout/, per source: the A40 (a GPU the profile has not
seen) and our own H100 NVML runs (hardware, host and software stack the profile has not seen).
``--never-fitted`` prints only those (seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from energaizer.calibration.fit import ProfileFitter
from energaizer.calibration.validate import validate
from energaizer.estimator import estimate_pairs
from energaizer.io.workload_csv import read_workload_csv
from energaizer.profile import load_profile

DATA = Path(__file__).resolve().parents[1] / "energaizer" / "data" / "measurements"
UNSEEN = DATA.parent / "holdout"  # rows the default profile is never fitted on (A40, own H100 runs)
SPLITS = {
    "GPU h100-sxm": lambda r: r.gpu == "h100-sxm",
    "GPU a10": lambda r: r.gpu == "a10",
    "GPU v100": lambda r: r.gpu.startswith("v100"),
    "family qwen": lambda r: "qwen" in r.workload.model_name.lower(),
    "family llama": lambda r: "llama" in r.workload.model_name.lower(),
    "family bert": lambda r: "bert" in r.workload.model_name.lower(),
    "source DVFS clocks": lambda r: r.extra.get("source") == "energaizer-artifact-dvfs",
    "source ML.ENERGY v3": lambda r: r.extra.get("source") == "mlenergy-v3",
}


def rows_all(folder: Path = DATA):
    rows = []
    for f in sorted(folder.glob("*.csv")):
        rows += read_workload_csv(f)
    return rows


def score(rows, prof):
    pred = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=prof)
    return validate(rows, pred).overall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nfev", type=int, default=250)
    ap.add_argument("--never-fitted", action="store_true", help="only the rows of energaizer/data/holdout")
    args = ap.parse_args()
    default = load_profile(None)
    if not args.never_fitted:
        hold_out_fits(rows_all(), default, args.nfev)
    unseen = rows_all(UNSEEN)
    by_source: dict[str, list] = {}
    for r in unseen:
        by_source.setdefault(r.extra.get("source") or "(none)", []).append(r)
    for source, group in sorted(by_source.items()):
        u = score(group, default)
        gpus = ", ".join(sorted({r.gpu for r in group}))
        print(
            f"{'never fitted':18s} {u.rows:5d} {u.energy_mape:11.1f} {u.time_mape:6.1f} {u.power_mape:6.1f}"
            f"   {source} ({gpus})"
        )


def hold_out_fits(rows, default, nfev: int) -> None:
    print(
        f"{'split':18s} {'rows':>5s} {'E% held-out':>11s} {'T%':>6s} {'P%':>6s} | {'E% default':>10s} {'fit s':>6s}"
    )
    for name, held in SPLITS.items():
        test = [r for r in rows if held(r)]
        train = [r for r in rows if not held(r)]
        t0 = time.perf_counter()
        prof = ProfileFitter(max_evaluations=nfev).fit(train).profile_
        dt = time.perf_counter() - t0
        s, d = score(test, prof), score(test, default)
        print(
            f"{name:18s} {s.rows:5d} {s.energy_mape:11.1f} {s.time_mape:6.1f} {s.power_mape:6.1f} | "
            f"{d.energy_mape:10.1f} {dt:6.1f}"
        )
    o = score(rows, default)
    print(f"{'all (default)':18s} {o.rows:5d} {o.energy_mape:11.1f} {o.time_mape:6.1f} {o.power_mape:6.1f}")


if __name__ == "__main__":
    main()
