"""The shipped demo data: fitted parameters only (no Alibaba rows), Azure rows with attribution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure_extract import build
from fit_alibaba import fit

from energaizer.planner.demo import load_azure

from .conftest import REPO, SHARED_TRACES

DEMO = REPO / "energaizer" / "data" / "demo"


def test_shipped_files_are_small_and_attributed() -> None:
    assert (DEMO / "azure_llm_inference_2023.csv.gz").stat().st_size < 1_500_000
    note = (DEMO / "README.md").read_text()
    assert "CC BY 4.0" in note or "Creative Commons Attribution 4.0" in note
    assert "Splitwise" in note and "research/study use only" in note
    az = load_azure()
    assert set(az.service) == {"code", "conv"} and az.t.size == 28185


def test_fit_holds_no_trace_rows() -> None:
    text = (DEMO / "alibaba2023_fit.json").read_text()
    assert "openb-pod" not in text
    assert len(text) < 10_000


@pytest.mark.skipif(
    not (SHARED_TRACES / "alibaba_gpu_v2023_pods.csv").exists(), reason="shared traces not present"
)
def test_refit_reproduces_the_shipped_parameters() -> None:
    shipped = json.loads((DEMO / "alibaba2023_fit.json").read_text())
    assert fit(SHARED_TRACES / "alibaba_gpu_v2023_pods.csv") == shipped


@pytest.mark.skipif(
    not (SHARED_TRACES / "azure_llm_inference_2023.csv").exists(), reason="shared traces not present"
)
def test_azure_extract_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "a.csv.gz"
    assert build(SHARED_TRACES / "azure_llm_inference_2023.csv", out) == 28185
    assert out.read_bytes() == (DEMO / "azure_llm_inference_2023.csv.gz").read_bytes()
