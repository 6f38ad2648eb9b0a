"""Physics and data from the H100 NVML runs of 2026-11-22 (benchmarks/results/h100-nvml-2026-11-22)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_model
from tests.estimator.test_session4_physics import _gemm_time

ROOT = Path(__file__).resolve().parents[2]


def test_unaligned_gemm_is_slow_on_hopper_only():
    """GPT-2's LM head (N = 50257, odd) cannot use Hopper's 16-byte bulk copies: measured 95 TFLOP/s
    against ~650 for aligned shapes. The padded vocabulary (50304) keeps the fast path, and an A100
    (native kernels for every alignment) pays nothing."""
    h_odd = _gemm_time(8192, 50257, 768, "h100-sxm", "bf16")
    h_pad = _gemm_time(8192, 50304, 768, "h100-sxm", "bf16")
    assert h_odd > 2.0 * h_pad
    h_even = _gemm_time(8192, 30522, 1024, "h100-sxm", "bf16")  # BERT: 4-byte aligned rows
    assert (
        h_pad * 30522 / 50304 * 1024 / 768
        < h_even
        < _gemm_time(8192, 30522 * 2 - 1, 1024, "h100-sxm", "bf16")
    )
    a_odd = _gemm_time(8192, 50257, 768, "a100-sxm4-40gb", "bf16")
    a_pad = _gemm_time(8192, 50304, 768, "a100-sxm4-40gb", "bf16")
    assert a_odd == pytest.approx(a_pad, rel=0.02)


def test_unaligned_vocabulary_slows_gpt2_training_on_h100():
    """The same GPT-2 with its vocabulary padded to a multiple of 64 (as Karpathy's nanoGPT does)
    trains faster on an H100, and the same on an A100."""
    gpt2 = get_model("gpt2")
    padded = gpt2.model_copy(update={"id": "gpt2-padded", "vocab": 50304})
    sizes = {"steps": 60, "global_batch_size": 8, "sequence_length": 1024}
    for gpu, gain in (("h100-sxm", 1.1), ("a100-sxm4-40gb", 1.0)):
        (odd,) = estimate(Workload(model="gpt2", task="training", training=sizes), gpu)
        (even,) = estimate(Workload(architecture=padded, task="training", training=sizes), gpu)
        assert odd.duration_seconds >= gain * even.duration_seconds * 0.99


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
