"""benchmarks/gpu_measure_collect.py: the committed H100 rows are what it makes from the raw runs."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _collector():
    spec = importlib.util.spec_from_file_location("collect", ROOT / "benchmarks" / "gpu_measure_collect.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("row", "kept"),
    [
        (
            {"task": "inference", "output_tokens": "256"},
            False,
        ),  # cuDNN attention on by default: plan building
        ({"task": "inference", "output_tokens": "256", "sdpa_cudnn": "1"}, False),
        ({"task": "inference", "output_tokens": "256", "sdpa_cudnn": "0"}, True),
        ({"task": "inference", "output_tokens": "0"}, True),  # prefill: the warm-up saw every shape
        ({"task": "training", "output_tokens": ""}, True),
    ],
)
def test_collector_drops_generate_rows_dominated_by_cudnn_plan_building(row, kept):
    assert _collector().keep(row) is kept


def test_committed_h100_rows_are_what_the_collector_makes(tmp_path):
    out = tmp_path / "h100.csv"
    assert _collector().main([str(ROOT / "benchmarks/results/h100-nvml-2026-11-22"), str(out)]) == 0
    assert out.read_text() == (ROOT / "energaizer/data/holdout/energaizer_h100.csv").read_text()
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 24 and {r["gpu"] for r in rows} == {"h100-sxm"}


@pytest.mark.parametrize(
    ("row", "scored"),
    [
        ({"task": "inference", "output_tokens": "0", "model": "qwen2-1.5b"}, "1"),  # AutoModelForCausalLM
        ({"task": "inference", "output_tokens": "0", "model": "bert-large"}, "1"),  # BertForMaskedLM
        ({"task": "inference", "output_tokens": "256", "model": "qwen2-1.5b"}, ""),  # generate: last token
        ({"task": "inference", "output_tokens": "0", "model": "vit-large"}, ""),  # no vocabulary
        ({"task": "training", "output_tokens": "", "model": "gpt2"}, ""),
        ({"task": "inference", "output_tokens": "0", "model": "qwen2-1.5b", "prompt_logits": "0"}, "0"),
    ],
)
def test_prefill_rows_of_the_head_classes_project_every_prompt_token(row, scored):
    """The script's prefill is the HF head class's forward(): logits for every position (module docstring)."""
    assert _collector().prompt_logits(row) == scored
