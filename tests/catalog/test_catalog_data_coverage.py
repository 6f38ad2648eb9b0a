"""Every model named in the shared measurement files resolves to the right catalog entry."""

from __future__ import annotations

import csv
from pathlib import Path

from energaizer import catalog
from energaizer.errors import UnknownNameError


def test_measured_model_ids_resolve_to_their_arch_key(shared_data: Path) -> None:
    files = sorted(p for p in (shared_data / "measured").glob("*.csv") if p.name != "model_architectures.csv")
    assert files
    wrong: set[tuple[str, str, str]] = set()
    checked = 0
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
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
    path = shared_data / "measured" / "model_architectures.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
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
    path = shared_data / "energaizer-artifact" / "workloads.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        names = {row["model"] for row in csv.DictReader(handle)}
    assert names
    for name in names:
        assert catalog.get_model(name).hf_id.lower() == name.lower() or name.lower() in [
            a.lower() for a in catalog.get_model(name).aliases
        ]


def test_artifact_gpu_labels_are_catalog_ids(shared_data: Path) -> None:
    path = shared_data / "energaizer-artifact" / "gpu_configs_wide.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        gpu = catalog.get_gpu(row["gpu"])
        assert gpu.id == row["gpu"]
        assert gpu.sm_count == int(row["num_sm"])
        assert gpu.peak_tflops["bf16"] == float(row["tc_bf16_flops"])
