"""User catalogs: ENERGAIZER_CATALOG and load_extra, replacement by id, malformed files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from energaizer import catalog
from energaizer.catalog import loader
from energaizer.errors import InvalidInputError, UnknownNameError


def _gpu(gpu_id: str, **changes: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": gpu_id,
        "name": f"Test {gpu_id}",
        "architecture": "hopper",
        "aliases": [f"{gpu_id}-alias"],
        "gfd_products": [f"TEST-{gpu_id.upper()}"],
        "sm_count": 100,
        "max_clock_mhz": 1800,
        "tensor_clock_mhz": 1700,
        "memory_gb": 64,
        "memory_bw_gbs": 2000,
        "l2_mb": 40,
        "peak_tflops": {"fp32": 50, "bf16": 600},
        "tdp_w": 500,
        "idle_power_w": 60,
        "interconnect_bw_gbs": 400,
    }
    entry.update(changes)
    return entry


MODEL = {
    "id": "tiny-llm",
    "hf_id": "acme/Tiny-LLM-1B",
    "aliases": ["tiny"],
    "params_b": 1.1,
    "layers": 16,
    "hidden": 2048,
    "heads": 16,
    "kv_heads": 4,
    "ffn": 5632,
    "vocab": 32000,
}


def _write(path: Path, data: object) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return path


def test_env_var_adds_gpus_and_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _write(tmp_path / "a.yaml", {"gpus": [_gpu("x100")]})
    second = _write(tmp_path / "b.json", {"models": [MODEL]})
    monkeypatch.setenv(loader.ENV_VAR, os.pathsep.join([str(first), str(second)]))
    assert catalog.get_gpu("X100-ALIAS").id == "x100"
    assert catalog.get_model("ACME/tiny-llm-1b").id == "tiny-llm"
    assert catalog.list_gpus()[-1].id == "x100"
    assert catalog.gpu_id_for_product("TEST-X100") == "x100"
    assert catalog.get_gpu("h100").id == "h100-sxm"  # built-ins stay
    monkeypatch.delenv(loader.ENV_VAR)
    with pytest.raises(UnknownNameError):
        catalog.get_gpu("x100")


def test_user_entry_replaces_builtin_with_same_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builtin_count = len(catalog.list_gpus())
    builtin_place = [g.id for g in catalog.list_gpus()].index("h100-sxm")
    path = _write(tmp_path / "override.yaml", {"gpus": [_gpu("h100-sxm", tdp_w=650, aliases=["my-h100"])]})
    monkeypatch.setenv(loader.ENV_VAR, str(path))
    h100 = catalog.get_gpu("h100-sxm")
    assert h100.tdp_w == 650
    assert catalog.get_gpu("my-h100") is h100
    assert len(catalog.list_gpus()) == builtin_count
    assert [g.id for g in catalog.list_gpus()].index("h100-sxm") == builtin_place  # keeps its place


def test_load_extra_applies_after_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = _write(tmp_path / "env.yaml", {"gpus": [_gpu("x100", tdp_w=400)]})
    cli_file = _write(tmp_path / "cli.yaml", {"gpus": [_gpu("x100", tdp_w=450)], "models": [MODEL]})
    monkeypatch.setenv(loader.ENV_VAR, str(env_file))
    parsed = catalog.load_extra(cli_file)
    assert [g.id for g in parsed.gpus] == ["x100"] and [m.id for m in parsed.models] == ["tiny-llm"]
    assert catalog.get_gpu("x100").tdp_w == 450
    assert catalog.get_model("tiny").layers == 16
    catalog.reset_extra()
    assert catalog.get_gpu("x100").tdp_w == 400


def test_edited_file_is_reread(tmp_path: Path) -> None:
    path = _write(tmp_path / "cat.yaml", {"gpus": [_gpu("x100", tdp_w=400)]})
    catalog.load_extra(path)
    assert catalog.get_gpu("x100").tdp_w == 400
    _write(path, {"gpus": [_gpu("x100", tdp_w=410, name="Test x100 rev B")]})
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse file systems
    assert catalog.get_gpu("x100").tdp_w == 410


def test_id_wins_over_an_alias_of_another_entry(tmp_path: Path) -> None:
    catalog.load_extra(_write(tmp_path / "c.yaml", {"gpus": [_gpu("x100", aliases=["h200"])]}))
    assert catalog.get_gpu("h200").id == "h200"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("gpus: [\n  - id: x\n", "not valid YAML"),
        ("- just a list\n", "mapping"),
        ("gpus: {id: x}\n", "gpus: must be a list"),
        ("widgets: []\n", "unknown top-level key"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InvalidInputError) as info:
        catalog.load_extra(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_invalid_field_names_file_entry_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", {"gpus": [_gpu("x100", memory_gb=-1)]})
    with pytest.raises(InvalidInputError) as info:
        catalog.load_extra(path)
    assert info.value.field == f"{path}: gpus[0] (x100).memory_gb"
    bad_model = dict(MODEL)
    del bad_model["vocab"]
    path = _write(tmp_path / "bad_model.json", {"models": [bad_model]})
    with pytest.raises(InvalidInputError, match="decoder needs vocab"):
        catalog.load_extra(path)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"peak_tflops": {"fp32": 50, "bf16": float("nan")}}, "peak_tflops.bf16: is not a number"),
        ({"memory_bw_gbs": float("inf")}, "memory_bw_gbs: must be a finite number"),
        ({"peak_tflops": {"fp32": 50, "bf16": 0}}, "peak_tflops.bf16: must be > 0"),
        ({"peak_tflops": {"fp32": 50, "bf16": -5}}, "peak_tflops.bf16: must be > 0"),
        ({"min_clock_mhz": 5000}, "min_clock_mhz > max_clock_mhz"),
        # no power_limit_max_w: the range's top is tdp_w, and every power-limit sweep raised
        ({"power_limit_min_w": 600}, "power_limit_min_w > power_limit_max_w (tdp_w"),
        ({"power_limit_max_w": 100}, "0.3 x tdp_w = 150 W"),
        ({"tensor_clock_mhz": 5000}, "tensor_clock_mhz > max_clock_mhz"),
        ({"idle_power_w": 500}, "idle_power_w must be below tdp_w"),
        ({"voltage_table": [{"mhz": 210, "value": 0}, {"mhz": 1800, "value": 0}]}, "voltage_table"),
        # finite but absurd: 1e300 GB/s gave an estimate of NaN energy
        ({"memory_bw_gbs": 1e300}, "memory_bw_gbs: must be <= 1e+07"),
        ({"sm_count": 10**12}, "sm_count: must be <= 100,000"),
        ({"peak_tflops": {"fp32": 50, "bf16": 1e30}}, "peak_tflops.bf16: must be <= 1e+08"),
    ],
)
def test_gpu_entries_that_give_no_finite_estimate_are_rejected(
    tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    """Each of these passed validation and gave a "feasible" estimate of null (NaN) or absurd energy."""
    path = _write(tmp_path / "bad.json", {"gpus": [_gpu("x100", **changes)]})
    with pytest.raises(InvalidInputError) as info:
        catalog.load_extra(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_duplicate_ids_in_one_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.yaml", {"gpus": [_gpu("x100"), _gpu("X100")]})
    with pytest.raises(InvalidInputError, match="duplicate id"):
        catalog.load_extra(path)


def test_missing_file_from_env_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loader.ENV_VAR, str(tmp_path / "nope.yaml"))
    with pytest.raises(InvalidInputError, match=r"nope\.yaml.*ENERGAIZER_CATALOG"):
        catalog.get_gpu("h100")


def test_failed_file_leaves_catalog_usable(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gpus: 3\n")
    with pytest.raises(InvalidInputError):
        catalog.load_extra(path)
    assert catalog.get_gpu("a100").id == "a100-sxm4-80gb"
