"""Fit the demo's job-arrival, GPU-count and duration model to the Alibaba 2023 GPU pod trace.

The trace (``alibaba_gpu_v2023_pods.csv`` in the shared traces folder, from alibaba/clusterdata
``cluster-trace-gpu-v2023``) is licensed for research/study use only, so the repository ships
only the parameters fitted here, never its rows. Refit with::

    python tools/fit_alibaba.py ../shared/traces/alibaba_gpu_v2023_pods.csv \\
        -o energaizer/data/demo/alibaba2023_fit.json

What is fitted (GPU pods only, ``gpu_count > 0``):

* the active window: the trace starts with long-lived pods created before collection; arrivals
  are fitted from the first day with at least ``MIN_DAILY`` GPU pod creations to the end;
* arrivals: the mean rate per hour of day (24 values, hours relative to the trace's anonymised
  origin), for a non-homogeneous Poisson process; inter-arrival statistics are recorded for
  reference;
* the GPU-count mix (share of pods per GPU count; GPU-sharing pods, ``gpu_milli < 1000``,
  count as one GPU);
* durations: a lognormal (mean and sd of ln seconds) per GPU count, from pods created in the
  window whose deletion is observed (not censored at the trace end), with the observed range.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

MIN_DAILY = 10
SOURCE = {
    "file": "alibaba_gpu_v2023_pods.csv",
    "repository": "alibaba/clusterdata @ 7a6c496e4f4b6ce6150be8f881cb051bf2abff42",
    "path": "cluster-trace-gpu-v2023/csv/openb_pod_list_gpuspec33.csv",
    "licence": "research/study use only (Alibaba Cluster Trace Program); rows are not redistributed",
    "citation": "Weng et al., 'Beware of Fragmentation: Scheduling GPU-Sharing Workloads with "
    "Fragmentation Gradient Descent', USENIX ATC '23",
}


def fit(path: str | Path) -> dict[str, Any]:
    raw = Path(path).read_bytes()
    rows = [r for r in csv.DictReader(raw.decode("utf-8").splitlines()) if int(r["gpu_count"] or 0) > 0]
    submit = np.array([float(r["submit_time_s"]) for r in rows])
    days = np.floor(submit / 86400).astype(int)
    daily = np.bincount(days)
    first_day = int(np.nonzero(daily >= MIN_DAILY)[0][0])
    start = first_day * 86400.0
    end = float(submit.max())
    in_window = submit >= start
    win = [r for r, keep in zip(rows, in_window, strict=True) if keep]
    sub = np.sort(submit[in_window])
    hours_total = (end - start) / 3600.0
    hour = ((sub % 86400) // 3600).astype(int)
    # full days in the window per hour of day, to turn counts into rates
    hour_cover = np.array(
        [((np.arange(start, end, 3600.0) % 86400) // 3600 == h).sum() for h in range(24)], dtype=float
    )
    hourly = np.bincount(hour, minlength=24) / np.maximum(hour_cover, 1.0)
    ia = np.diff(sub)
    pos = ia[ia > 0]
    counts = Counter(int(r["gpu_count"]) for r in win)
    total = sum(counts.values())
    sharing = sum(1 for r in win if int(r["gpu_count"]) == 1 and int(r["gpu_milli"] or 1000) < 1000)
    durations: dict[str, Any] = {}
    for g in sorted(counts):
        d = np.array(
            [
                float(r["duration_s"])
                for r in win
                if int(r["gpu_count"]) == g and r["duration_s"] and r["censored_at_trace_end"] != "1"
            ]
        )
        d = d[d > 0]
        if d.size < 2:
            continue
        ln = np.log(d)
        durations[str(g)] = {
            "n": int(d.size),
            "ln_mean": round(float(ln.mean()), 4),
            "ln_sd": round(float(ln.std(ddof=1)), 4),
            "min_s": float(d.min()),
            "max_s": float(d.max()),
            "median_s": float(np.median(d)),
            "p99_s": float(np.percentile(d, 99)),
        }
    return {
        "source": {**SOURCE, "sha256": hashlib.sha256(raw).hexdigest()},
        "fitted_with": "python tools/fit_alibaba.py",
        "window": {
            "rule": f"from the first day with >= {MIN_DAILY} GPU pod creations to the last creation",
            "start_s": start,
            "end_s": end,
            "days": round((end - start) / 86400.0, 3),
            "gpu_pods": int(in_window.sum()),
            "gpu_pods_total": len(rows),
        },
        "arrivals": {
            "model": "non-homogeneous Poisson, rate piecewise constant by hour of day",
            "mean_rate_per_hour": round(float(in_window.sum() / hours_total), 4),
            "hourly_rate_per_hour": [round(float(x), 4) for x in hourly],
            "interarrival": {
                "mean_s": round(float(ia.mean()), 3),
                "cv": round(float(ia.std() / ia.mean()), 4),
                "same_second_fraction": round(float((ia == 0).mean()), 4),
                "lognormal_ln_mean": round(float(np.log(pos).mean()), 4),
                "lognormal_ln_sd": round(float(np.log(pos).std(ddof=1)), 4),
            },
        },
        "gpu_count_mix": {str(g): round(counts[g] / total, 6) for g in sorted(counts)},
        "gpu_sharing_fraction": round(sharing / total, 4),
        "duration_lognormal_by_gpu_count": durations,
        "notes": "gpu_count counts a GPU-sharing pod (gpu_milli < 1000) as one GPU; gpu_spec type "
        "constraints are not used (the demo's pools are modern GPU types).",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Refit the demo trace parameters from the Alibaba 2023 GPU pods."
    )
    parser.add_argument("trace", help="path to alibaba_gpu_v2023_pods.csv")
    parser.add_argument("-o", "--output", help="JSON file to write (default: stdout)")
    args = parser.parse_args(argv)
    result = fit(args.trace)
    text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
