"""Estimator speed: a 20,000-row ``--from-csv`` run, the in-process per-pair cost, CLI cold start, and one
profile evaluation of a calibration fit.

    python benchmarks/bench_estimate.py [--rows 20000] [--repeat 3]

Prints a table; targets: <= 0.1 ms per (workload, GPU) row in the CLI run (issue 21), CLI cold start <= 1 s.
The package's bytecode is compiled first, as an installed wheel has it. The CLI runs twice: at its default
(one worker process per available CPU, ``energaizer.workers``) and with ``--workers 1``; ``estimate_pairs``
(the vectorised core) runs in one process. A fit (``energaizer calibrate``) evaluates many profiles on
the same rows: on the 1037 shipped measured rows, one evaluation as a full ``pipeline.run`` and as the
``pipeline.solve`` of rows prepared once (what ``ProfileFitter`` does).
Each command runs ``--repeat`` times; the table shows the median (and the fastest run), with the
machine's load average, because a shared machine's timings vary from run to run.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import energaizer
from energaizer.catalog import get_model
from energaizer.workers import available_cpus, plan_workers

MODELS = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "qwen3-30b-a3b",
    "mixtral-8x7b",
    "gpt2",
    "bert-large",
    "opt-1.3b",
    "gemma-2-9b",
    "mistral-7b-v0.3",
    "resnet-50",
]
GPUS = ["h100-sxm", "h200", "a100-sxm4-80gb", "l40s", "l4", "a10", "b200", "mi300x", "t4", "v100-sxm2-32gb"]


def write_csv(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "model",
                "gpu",
                "gpu_count",
                "precision",
                "task",
                "requests",
                "input_tokens",
                "output_tokens",
                "batch_size",
                "tokens",
                "sequence_length",
                "global_batch_size",
            ]
        )
        for _ in range(n):
            model, gpu = rng.choice(MODELS), rng.choice(GPUS)
            heads = get_model(model).heads or 1
            # valid layouts: tensor parallelism over the GPUs divides the attention heads
            count = rng.choice([c for c in (1, 2, 4, 8) if heads % c == 0 or model == "resnet-50"])
            if rng.random() < 0.8:
                w.writerow(
                    [
                        model,
                        gpu,
                        count,
                        rng.choice(["bf16", "fp8"]),
                        "inference",
                        rng.randint(1, 10**5),
                        rng.randint(16, 4096),
                        rng.choice([0, 64, 256, 1024]),
                        rng.choice([1, 8, 32, 128]),
                        "",
                        "",
                        "",
                    ]
                )
            else:
                w.writerow(
                    [
                        model,
                        gpu,
                        count,
                        "bf16",
                        "training",
                        "",
                        "",
                        "",
                        "",
                        f"{rng.uniform(1e8, 1e11):.0f}",
                        rng.choice([512, 2048, 4096]),
                        rng.choice([32, 256, 1024]),
                    ]
                )


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def fit_evaluation(repeat: int) -> tuple[list[float], list[float], int]:
    """Seconds of one profile evaluation on the shipped measured rows: a full run, and a solve of the rows
    prepared once (``repeat`` each, after one warm-up run); and the number of rows."""
    from energaizer import pipeline
    from energaizer.catalog import get_gpu
    from energaizer.io.workload_csv import read_workload_csv
    from energaizer.profile import CalibrationProfile

    data = Path(energaizer.__file__).parent / "data" / "measurements"
    rows = [r for path in sorted(data.glob("*.csv")) for r in read_workload_csv(path)]
    workloads, specs, prof = [r.workload for r in rows], [get_gpu(r.gpu) for r in rows], CalibrationProfile()
    pipeline.run(workloads, specs, prof)
    t_run, t_solve = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pipeline.run(workloads, specs, prof)
        t_run.append(time.perf_counter() - t0)
    prepared = pipeline.prepare(workloads, specs)
    for _ in range(repeat):
        t0 = time.perf_counter()
        pipeline.solve(prepared, prof)
        t_solve.append(time.perf_counter() - t0)
    return t_run, t_solve, len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each CLI command (median reported)")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "energaizer"]
    # The package's bytecode, as an installed wheel has it: a checkout run with PYTHONDONTWRITEBYTECODE set
    # (some CI images) would otherwise compile ~45 modules (~0.1 s) in every CLI run timed below.
    compileall.compile_dir(Path(energaizer.__file__).parent, quiet=1)
    repeat = max(1, args.repeat)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.csv"
        write_csv(path, args.rows)
        from energaizer.estimator import estimate_pairs
        from energaizer.io.workload_csv import read_workload_csv

        t0 = time.perf_counter()
        rows = read_workload_csv(path)
        t_parse = time.perf_counter() - t0
        t0 = time.perf_counter()
        estimate_pairs([r.workload for r in rows], [r.gpu for r in rows])
        t_core = time.perf_counter() - t0
        cli = [*exe, "estimate", "--from-csv", str(path), "--json"]
        t_cli = [timed(cli) for _ in range(repeat)]
        t_cli1 = [timed([*cli, "--workers", "1"]) for _ in range(repeat)]
    t_run, t_solve, n_fit = fit_evaluation(repeat)
    cold_help = [timed([*exe, "--help"]) for _ in range(repeat)]
    cold_gpus = [timed([*exe, "gpus", "--json"]) for _ in range(repeat)]
    load_after = os.getloadavg()
    n = args.rows
    med = statistics.median
    print(f"{'measure':44s} {'seconds':>9s} {'fastest':>9s} {'ms/row':>8s}")
    print(
        f"{'CSV parse + validation (' + str(n) + ' rows)':44s} {t_parse:9.3f} {'':>9s} {t_parse / n * 1e3:8.4f}"
    )
    print(f"{'estimate_pairs (vectorised core)':44s} {t_core:9.3f} {'':>9s} {t_core / n * 1e3:8.4f}")
    print(
        f"{'energaizer estimate --from-csv --json (CLI)':44s} {med(t_cli):9.3f} {min(t_cli):9.3f}"
        f" {med(t_cli) / n * 1e3:8.4f}"
    )
    print(
        f"{'  the same, --workers 1 (one process)':44s} {med(t_cli1):9.3f} {min(t_cli1):9.3f}"
        f" {med(t_cli1) / n * 1e3:8.4f}"
    )
    print(f"{'fit evaluation, full run (' + str(n_fit) + ' rows)':44s} {med(t_run):9.3f} {min(t_run):9.3f}")
    print(f"{'fit evaluation, solve of prepared rows':44s} {med(t_solve):9.3f} {min(t_solve):9.3f}")
    print(f"{'CLI cold start: energaizer --help':44s} {med(cold_help):9.3f} {min(cold_help):9.3f}")
    print(f"{'CLI cold start: energaizer gpus --json':44s} {med(cold_gpus):9.3f} {min(cold_gpus):9.3f}")
    print(
        f"CLI figures: median of {repeat} runs; {available_cpus()} CPUs available (the CLI's default workers: "
        f"{plan_workers(n, 0)}), load average (1 min) "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
