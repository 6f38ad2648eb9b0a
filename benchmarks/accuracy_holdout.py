"""Does the fit generalise? Leave-one-GPU-out and leave-one-family-out accuracy, GPU ranking, never-fitted rows.

    python benchmarks/accuracy_holdout.py [--by gpu,family,source] [--only a10,qwen] [--nfev 250] [--json OUT]
        [--save-profiles DIR]
    python benchmarks/accuracy_holdout.py --never-fitted

For each GPU type (``gpu``) and each model family (``family``: the catalog's ``family`` reduced to its
lineage, e.g. llama-1/llama-3/codellama -> llama, qwen2/qwen3-moe -> qwen) of the measured rows in
energaizer/data/measurements, the profile is refitted on the other rows (from the physical defaults, the
same fit as ``energaizer calibrate``) and scored on the held-out rows. Every row is thus predicted by a
fit that has not seen its GPU (or its family); the pooled figures over all rows are the headline:
MAPE of energy/time/power and the GPU-ranking agreement (pairwise concordance of the order of energy per unit
of work of one workload, or one source configuration, measured on two GPU types in one campaign:
``energaizer.calibration.validate.gpu_pairs``; also over the decisive pairs, whose measured energies differ
by more than 5 %), next to the in-sample figures of the shipped
profile on the same rows. ``source`` holds out two whole sources (the DVFS clocks, ML.ENERGY v3).
Then the shipped profile on the never-fitted rows of energaizer/data/holdout (the A40, our own H100 runs),
and the never-fitted GPU (the A40) ranked against the fitted ones on the configurations both ran.
``--never-fitted`` prints only those (seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from energaizer.calibration.fit import ProfileFitter
from energaizer.calibration.validate import (
    ValidationReport,
    gpu_pairs,
    measured_arrays,
    pair_record,
    validate,
)
from energaizer.catalog import get_model
from energaizer.estimator import estimate_pairs
from energaizer.io.workload_csv import read_workload_csv
from energaizer.profile import load_profile, save_profile

DATA = Path(__file__).resolve().parents[1] / "energaizer" / "data" / "measurements"
UNSEEN = DATA.parent / "holdout"  # rows the default profile is never fitted on (A40, own H100 runs)
# catalog families that are one lineage of architectures (same block structure and authors)
LINEAGE = {
    "codellama": "llama",
    "xgen": "llama",
    "codegemma": "gemma",
    "mixtral": "mistral",
    "mobilevit": "vit",
}
SOURCES = {"source DVFS clocks": "energaizer-artifact-dvfs", "source ML.ENERGY v3": "mlenergy-v3"}


def family(model_name: str) -> str:
    """The lineage of a catalog model: its catalog family without the version (llama-3 -> llama)."""
    fam = get_model(model_name).family or model_name
    fam = re.sub(r"(-moe)$", "", fam)
    fam = re.sub(r"-?\d+(\.\d+)?$", "", fam) or fam
    return LINEAGE.get(fam, fam)


def rows_all(folder: Path = DATA):
    rows = []
    for f in sorted(folder.glob("*.csv")):
        rows += read_workload_csv(f)
    return rows


def score(rows, prof):
    pred = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=prof)
    return validate(rows, pred).overall


def splits(rows, kinds: list[str]) -> dict[str, dict[str, Callable]]:
    out: dict[str, dict[str, Callable]] = {}
    if "gpu" in kinds:
        out["gpu"] = {g: (lambda r, g=g: r.gpu == g) for g in sorted({r.gpu for r in rows})}
    if "family" in kinds:
        fams = sorted({family(r.workload.model_name) for r in rows})
        out["family"] = {f: (lambda r, f=f: family(r.workload.model_name) == f) for f in fams}
    if "source" in kinds:
        out["source"] = {k: (lambda r, s=s: r.extra.get("source") == s) for k, s in SOURCES.items()}
    return out


def _pooled(rows, preds: dict[int, tuple[float, float, float]]) -> ValidationReport:
    """Validation of rows each predicted by its own hold-out fit."""
    idx = sorted(preds)
    arr = np.array([preds[i] for i in idx], dtype=np.float64).reshape(-1, 3)
    batch = SimpleNamespace(
        gpu=[rows[i].gpu for i in idx],
        energy_joules=arr[:, 0],
        duration_seconds=arr[:, 1],
        average_power_watts=arr[:, 2],
    )
    return validate([rows[i] for i in idx], batch)


def discordant_pairs(rows, preds: dict[int, tuple[float, float, float]]) -> list[dict]:
    """The GPU pairs (same workload, one campaign) whose held-out predicted order of energy per unit of work
    is the reverse of the measured one: ``energaizer validate``'s record of each (ratios first GPU / second
    GPU, CSV lines, decisive) with the rows' precision."""
    idx = sorted(preds)
    sub = [rows[i] for i in idx]
    predicted = np.array([preds[i][0] for i in idx], dtype=np.float64)
    return [
        {**pair_record(sub, pair), "precision": sub[pair.rows[0][0]].workload.precision}
        for pair in gpu_pairs(sub, measured_arrays(sub)[0], predicted)
        if not pair.concordant
    ]


def leave_one_out(
    rows, default, kind: str, groups: dict[str, Callable], nfev: int, save: Path | None = None
) -> dict:
    print(f"\nleave-one-{kind}-out (refit without the group, score the group; in-sample = shipped profile)")
    print(
        f"{kind:22s} {'rows':>5s} {'E%':>6s} {'T%':>6s} {'P%':>6s} | {'in-sample E/T/P':>17s} {'fit s':>6s}"
    )
    preds: dict[int, tuple[float, float, float]] = {}
    table = {}
    for name, held in groups.items():
        test_i = [i for i, r in enumerate(rows) if held(r)]
        train = [r for r in rows if not held(r)]
        test = [rows[i] for i in test_i]
        t0 = time.perf_counter()
        prof = ProfileFitter(max_evaluations=nfev).fit(train).profile_
        dt = time.perf_counter() - t0
        if save is not None:  # the held-out fit, to score its rows one by one (energaizer validate --profile)
            save_profile(prof, save / f"{kind}-{name}.json")
        pred = estimate_pairs([r.workload for r in test], [r.gpu for r in test], profile=prof)
        for j, i in enumerate(test_i):
            preds[i] = (pred.energy_joules[j], pred.duration_seconds[j], pred.average_power_watts[j])
        s, d = validate(test, pred).overall, score(test, default)
        table[name] = {
            "rows": s.rows,
            "held_out": [s.energy_mape, s.time_mape, s.power_mape],
            "in_sample": [d.energy_mape, d.time_mape, d.power_mape],
        }
        print(
            f"{name:22s} {s.rows:5d} {s.energy_mape:6.1f} {s.time_mape:6.1f} {s.power_mape:6.1f} | "
            f"{d.energy_mape:5.1f} {d.time_mape:5.1f} {d.power_mape:5.1f} {dt:6.1f}",
            flush=True,
        )
    pooled = _pooled(rows, preds)
    flips = discordant_pairs(rows, preds)
    for f in flips:
        print(
            f"  order reversed: {f['source']} {f['workload']} {f['precision']} "
            f"{f['gpus'][0]}/{f['gpus'][1]} energy measured {f['measured_ratio']:.2f}, predicted "
            f"{f['predicted_ratio']:.2f}"
        )
    o = pooled.overall
    ranking = (
        f"ranking {pooled.ranking_concordance:.2f} of {pooled.ranking_pairs} pairs ({pooled.decisive_concordance:.2f} "
        f"of the {pooled.decisive_pairs} decisive ones), best GPU {pooled.best_gpu_agreement:.2f}"
        if pooled.ranking_pairs
        else "ranking: no workload measured on two GPU types of one campaign in these groups"
    )
    print(
        f"{'pooled':22s} {o.rows:5d} {o.energy_mape:6.1f} {o.time_mape:6.1f} {o.power_mape:6.1f} | {ranking}"
    )
    return {
        "groups": table,
        "pooled": [o.energy_mape, o.time_mape, o.power_mape],
        "rows": o.rows,
        "ranking_concordance": pooled.ranking_concordance,
        "ranking_pairs": pooled.ranking_pairs,
        "decisive_concordance": pooled.decisive_concordance,
        "decisive_pairs": pooled.decisive_pairs,
        "best_gpu_agreement": pooled.best_gpu_agreement,
        "order_reversed": flips,
    }


def never_fitted(default) -> dict:
    unseen = rows_all(UNSEEN)
    by_source: dict[str, list] = {}
    for r in unseen:
        by_source.setdefault(r.extra.get("source") or "(none)", []).append(r)
    out = {}
    print("\nnever fitted (shipped profile)")
    for source, group in sorted(by_source.items()):
        u = score(group, default)
        gpus = ", ".join(sorted({r.gpu for r in group}))
        out[source] = {"rows": u.rows, "mape": [u.energy_mape, u.time_mape, u.power_mape], "gpus": gpus}
        print(
            f"{source:32s} {u.rows:5d} {u.energy_mape:6.1f} {u.time_mape:6.1f} {u.power_mape:6.1f}   ({gpus})"
        )
    # an unseen GPU ranked against the fitted ones: its rows paired with the fitted rows of one configuration
    both = unseen + rows_all()
    pred = estimate_pairs([r.workload for r in both], [r.gpu for r in both], profile=default)
    held = {r.gpu for r in unseen} - {r.gpu for r in both[len(unseen) :]}
    pairs = [
        x
        for x in gpu_pairs(both, measured_arrays(both)[0], pred.energy_joules, pred.gpu)
        if held & set(x.gpus)
    ]
    if pairs:
        agree = sum(x.concordant for x in pairs)
        out["unseen_gpu_ranking"] = {
            "gpus": sorted(held),
            "pairs": len(pairs),
            "concordance": agree / len(pairs),
        }
        print(
            f"ranking of {', '.join(sorted(held))} against the fitted GPUs: {agree} of {len(pairs)} pairs in order"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nfev", type=int, default=250, help="most function evaluations per refit")
    ap.add_argument("--by", default="gpu,family,source", help="comma list of gpu, family, source")
    ap.add_argument(
        "--only",
        default="",
        help="comma list of group names to hold out (e.g. a10,h100-sxm,qwen); default all of each --by kind",
    )
    ap.add_argument("--never-fitted", action="store_true", help="only the rows of energaizer/data/holdout")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    ap.add_argument(
        "--save-profiles", type=Path, metavar="DIR", help="write each held-out fit to DIR/<kind>-<group>.json"
    )
    args = ap.parse_args()
    if args.save_profiles:
        args.save_profiles.mkdir(parents=True, exist_ok=True)
    default = load_profile(None)
    result: dict = {}
    if not args.never_fitted:
        rows = rows_all()
        ins = validate(
            rows, estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=default)
        )
        o = ins.overall
        result["in_sample"] = {
            "rows": o.rows,
            "mape": [o.energy_mape, o.time_mape, o.power_mape],
            "ranking_concordance": ins.ranking_concordance,
            "ranking_pairs": ins.ranking_pairs,
            "decisive_concordance": ins.decisive_concordance,
            "decisive_pairs": ins.decisive_pairs,
        }
        print(
            f"in-sample (shipped profile) {o.rows} rows: {o.energy_mape:.1f} / {o.time_mape:.1f} / "
            f"{o.power_mape:.1f}, ranking {ins.ranking_concordance:.2f} of {ins.ranking_pairs} pairs "
            f"({ins.decisive_concordance:.2f} of the {ins.decisive_pairs} decisive ones)"
        )
        only = {g.strip() for g in args.only.split(",") if g.strip()}
        for kind, groups in splits(rows, [k.strip() for k in args.by.split(",")]).items():
            if only:
                groups = {name: held for name, held in groups.items() if name in only}
                if not groups:
                    continue
            result[f"leave_one_{kind}_out"] = leave_one_out(
                rows, default, kind, groups, args.nfev, args.save_profiles
            )
    result["never_fitted"] = never_fitted(default)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
