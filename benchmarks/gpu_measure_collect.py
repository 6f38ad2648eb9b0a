#!/usr/bin/env python3
"""Turn the raw runs of ``benchmarks/gpu_measure.py`` into a calibration CSV (contract section 3).

    python benchmarks/gpu_measure_collect.py benchmarks/results/h100-nvml-2026-11-22 \\
        energaizer/data/holdout/energaizer_h100.csv

Reads ``RUN_DIR/run*/workloads.csv`` and keeps every row except HF ``generate`` rows measured with
PyTorch's cuDNN attention backend on (column ``sdpa_cudnn`` 1, or absent: PyTorch's default on
Hopper): there each new KV length builds a cuDNN plan, ~64 ms per decode step on the measured
machine (run3/log.txt: 75 ms/token on new lengths, 11 ms/token on lengths seen before or with the
backend off), a one-off host cost that no kernel model should absorb. Those rows were measured again
with the backend off (run3).

``prompt_logits`` is 1 on the prefill-only rows of text models: the script's forward pass is the
Hugging Face head class's (``AutoModelForCausalLM``, ``BertForMaskedLM``), which projects every prompt
token onto the vocabulary (the Qwen2-1.5B row's LM head: 9.7 ms of its 122 ms pass in
``profile/profiles.txt``); the artifact's and the contract's prefill rows run the base model (no LM head).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from energaizer.catalog import get_model
from energaizer.io.workload_csv import MEASURED_COLUMNS, MEASUREMENT_FILE_COLUMNS

COLUMNS = (*MEASUREMENT_FILE_COLUMNS[: -len(MEASURED_COLUMNS)], "prompt_logits", *MEASURED_COLUMNS)


def prompt_logits(row: dict[str, str]) -> str:
    """1 where the measured forward pass projected every prompt token (module docstring): the prefill-only
    rows of models with a vocabulary."""
    if row.get("prompt_logits"):  # runs that record it themselves
        return row["prompt_logits"]
    prefill = row["task"] == "inference" and row["output_tokens"] in ("", "0")
    return "1" if prefill and get_model(row["model"]).vocab else ""


def keep(row: dict[str, str]) -> bool:
    generates = row["task"] == "inference" and row["output_tokens"] not in ("", "0")
    return not generates or row.get("sdpa_cudnn", "1") == "0"


def collect(results: Path, repo_root: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(results.glob("run*/workloads.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=1):
                if keep(row):
                    out = {k: row.get(k, "") for k in COLUMNS}
                    out["prompt_logits"] = prompt_logits(row)
                    out["source_ref"] = f"{path.resolve().relative_to(repo_root)}#row{i}"
                    rows.append(out)
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: gpu_measure_collect.py RESULTS_DIR OUT_CSV", file=sys.stderr)
        return 2
    repo_root = Path(__file__).resolve().parents[1]
    rows = collect(Path(argv[0]), repo_root)
    with Path(argv[1]).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} rows -> {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
