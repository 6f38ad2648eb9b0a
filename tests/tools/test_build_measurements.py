"""The shipped-data builder keeps held-out GPUs and model families (never fitted) apart from the
calibration rows."""

from __future__ import annotations

import csv
from pathlib import Path

import build_measurements as datasets
import pytest


def _row(gpu: str, model: str = "llama-7b") -> dict:
    return {"source": "s", "model": model, "gpu": gpu, "task": "inference", "requests": 1}


def test_held_out_gpu_rows_go_to_their_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "BUILDERS", {"demo": lambda shared: [_row("a100-sxm4-40gb"), _row("a40")]})
    counts = datasets.build(tmp_path / "shared", tmp_path / "measurements", tmp_path / "holdout")
    assert counts == {"measurements/demo": 1, "holdout/demo": 1}
    fitted = list(csv.DictReader((tmp_path / "measurements" / "demo.csv").open()))
    held = list(csv.DictReader((tmp_path / "holdout" / "demo.csv").open()))
    assert [r["gpu"] for r in fitted] == ["a100-sxm4-40gb"]
    assert [r["gpu"] for r in held] == ["a40"]
    assert "a40" in datasets.HOLDOUT_GPUS


def test_shipped_calibration_rows_exclude_the_held_out_gpu() -> None:
    shipped = Path(datasets.OUT_DIR)
    for path in shipped.glob("*.csv"):
        gpus = {r["gpu"] for r in csv.DictReader(path.open())}
        assert not gpus & datasets.HOLDOUT_GPUS, path.name
    assert any(Path(datasets.HOLDOUT_DIR).glob("*.csv"))


def test_held_out_family_rows_go_to_their_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nemotron-H (Mamba-2 blocks, which no fitted row has) is the unseen-family check."""
    hybrid = _row("h100-sxm", "nvidia/NVIDIA-Nemotron-Nano-12B-v2")
    monkeypatch.setattr(datasets, "BUILDERS", {"demo": lambda shared: [_row("h100-sxm"), hybrid]})
    datasets.build(tmp_path / "shared", tmp_path / "measurements", tmp_path / "holdout")
    held = list(csv.DictReader((tmp_path / "holdout" / "demo.csv").open()))
    assert [r["model"] for r in held] == [hybrid["model"]]
    for path in Path(datasets.OUT_DIR).glob("*.csv"):
        assert not any("Nemotron" in r["model"] for r in csv.DictReader(path.open())), path.name
