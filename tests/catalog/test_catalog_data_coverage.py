"""Every model named in the shared measurement files resolves to the right catalog entry."""

from __future__ import annotations

import csv
from pathlib import Path

from energaizer import catalog
from energaizer.errors import UnknownNameError


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_measured_model_ids_resolve_to_their_arch_key(shared_data: Path) -> None:
    files = sorted(p for p in (shared_data / "measured").glob("*.csv") if p.name != "model_architectures.csv")
    assert files
    wrong: set[tuple[str, str, str]] = set()
    checked = 0
    for row in (row for path in files for row in _rows(path)):
        arch_key = (row.get("arch_key") or "").strip()
        if not arch_key:
            continue
        checked += 1
        try:
            found = catalog.get_model(row["model_id"]).id
        except UnknownNameError:
            found = "<unknown>"
        if found != arch_key:
            wrong.add((row["model_id"], arch_key, found))
    assert checked > 100
    assert not wrong, sorted(wrong)


def test_architecture_table_is_fully_covered(shared_data: Path) -> None:
    for row in _rows(shared_data / "measured" / "model_architectures.csv"):
        model = catalog.get_model(row["arch_key"])
        assert model.id == row["arch_key"]
        assert model.layers == int(row["layers"]) and model.hidden == int(row["hidden"])
        assert model.heads == int(row["heads"]) and model.vocab == int(row["vocab"])
        if row["kv_heads"]:
            assert model.kv_heads == int(row["kv_heads"])
        assert model.ffn == (int(row["dense_ffn"]) if row["dense_ffn"] else None)
        assert model.moe_experts == (int(row["moe_experts"]) if row["moe_experts"] else None)
        assert model.moe_expert_ffn == (int(row["moe_expert_ffn"]) if row["moe_expert_ffn"] else None)
        assert model.confidence == row["confidence"]


def test_artifact_workload_models_resolve(shared_data: Path) -> None:
    names = {row["model"] for row in _rows(shared_data / "energaizer-artifact" / "workloads.csv")}
    assert names
    for name in names:
        model = catalog.get_model(name)
        assert name.lower() in {n.lower() for n in (model.hf_id or "", *model.aliases)}


def test_artifact_gpu_labels_are_catalog_ids(shared_data: Path) -> None:
    for row in _rows(shared_data / "energaizer-artifact" / "gpu_configs_wide.csv"):
        gpu = catalog.get_gpu(row["gpu"])
        assert gpu.id == row["gpu"]
        assert gpu.sm_count == int(row["num_sm"])
        assert gpu.peak_tflops["bf16"] == float(row["tc_bf16_flops"])
