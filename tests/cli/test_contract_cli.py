"""The command line against the contract (../shared/contract.md), section by section: every flag, default, JSON field
(name, type, unit) and CSV column the contract names, checked on what ``--help`` and a real run give.

In-process (``main``), as the other fast CLI tests; every JSON document is read with non-finite constants
refused (``NaN``/``Infinity`` are not JSON, and no valid run writes them). The plan's JSON fields are checked
in tests/planner/test_outputs.py, the catalogs' ids and aliases in tests/catalog (through the Python API; here
through the command, as a user names them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from energaizer.cli.app import main

# --- helpers -------------------------------------------------------------------------------------------


def _refuse(constant: str) -> Any:
    raise ValueError(f"non-finite JSON constant {constant}")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_refuse)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """stdout of a run that must succeed (exit 0, nothing on stderr)."""
    try:
        main(list(args))
    except SystemExit as exc:
        out, err = capsys.readouterr()
        assert exc.code in (0, None), (exc.code, err)
        return out
    out, err = capsys.readouterr()
    assert err == "", err
    return out


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    return strict_json(run(capsys, *args, "--json"))


def help_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *command: str) -> str:
    monkeypatch.setenv("COLUMNS", "250")  # one line per option: nothing folded
    return run(capsys, *command, "--help")


def has_flag(text: str, flag: str) -> bool:
    """``--gpu`` as a whole flag in a help text (not the start of ``--gpu-count``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def option_line(text: str, flag: str) -> str:
    (line,) = [ln for ln in text.splitlines() if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", ln)][:1]
    return line


# --- section 1: commands and flags ---------------------------------------------------------------------

CONTRACT_COMMANDS = (
    "estimate",
    "gpus",
    "models",
    "calibrate",
    "validate",
    "plan",
    "operator",
    "extender",
    "export-measurements",
)

ESTIMATE_FLAGS = (
    "--model",
    "--model-file",
    "--gpu",
    "--gpu-count",
    "--precision",
    "--task",
    "--requests",
    "--input-tokens",
    "--output-tokens",
    "--batch-size",
    "--tokens",
    "--steps",
    "--global-batch-size",
    "--sequence-length",
    "--frequency-mhz",
    "--power-limit-w",
    "--json",
    "--from-csv",
    "--profile",
)


def test_every_contract_command_is_listed(capsys, monkeypatch) -> None:
    text = help_text(capsys, monkeypatch)
    listed = {m.group(1) for m in re.finditer(r"│ ([a-z][a-z-]+) {2,}", text)}
    assert set(CONTRACT_COMMANDS) <= listed, set(CONTRACT_COMMANDS) - listed


def test_estimate_help_names_every_contract_flag_with_its_choices(capsys, monkeypatch) -> None:
    text = help_text(capsys, monkeypatch, "estimate")
    assert [f for f in ESTIMATE_FLAGS if not has_flag(text, f)] == []
    assert "<fp32|tf32|bf16|fp16|fp8|int8|fp4>" in option_line(text, "--precision")
    assert "<inference|training>" in option_line(text, "--task")
    assert "all" in option_line(text, "--gpu") and "repeatable" in option_line(text, "--gpu")


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (("calibrate",), ("-o", "--output", "--profile", "--json")),
        (("validate",), ("--profile", "--json")),
        (("plan",), ("--demo", "--json", "--profile")),
        (("sweep",), ("--gpu", "--model", "--profile", "--json")),
        (("operator",), ("--namespace", "--all-namespaces", "--profile")),
        (("export-measurements",), ("--namespace", "--all-namespaces", "-o", "--output")),
        (("extender",), ("--port", "--profile")),
    ],
)
def test_other_commands_name_their_contract_flags(capsys, monkeypatch, command, flags) -> None:
    text = help_text(capsys, monkeypatch, *command)
    assert [f for f in flags if not has_flag(text, f)] == []


def test_extender_listens_on_8888_by_default(capsys, monkeypatch) -> None:
    assert "[default: 8888]" in option_line(help_text(capsys, monkeypatch, "extender"), "--port")


# --- section 1: estimate --json ------------------------------------------------------------------------

ESTIMATE_KEYS = {
    "gpu",
    "energy_joules",
    "duration_seconds",
    "average_power_watts",
    "energy_per_output_token_joules",
    "breakdown",
    "feasible",
    "reason",
}
BREAKDOWN_KEYS = {"static", "compute", "memory", "communication", "overhead"}


def check_feasible(row: dict[str, Any]) -> None:
    """Names, types and units of one feasible estimate (contract section 1)."""
    assert set(row) >= ESTIMATE_KEYS, ESTIMATE_KEYS - set(row)
    assert row["feasible"] is True and row["reason"] == ""
    for key in ("energy_joules", "duration_seconds", "average_power_watts"):
        assert isinstance(row[key], float) and row[key] > 0, (key, row[key])
    # joules / seconds = watts: one quantity per name, in its unit
    assert row["average_power_watts"] == pytest.approx(row["energy_joules"] / row["duration_seconds"])
    assert set(row["breakdown"]) >= BREAKDOWN_KEYS
    assert all(isinstance(v, float) and v >= 0 for v in row["breakdown"].values())
    assert sum(row["breakdown"].values()) == pytest.approx(row["energy_joules"])  # joules by component


def test_estimate_json_fields_types_and_units(capsys) -> None:
    rows = run_json(
        capsys,
        "estimate",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "l4",
        "--gpu",
        "h100",  # an alias: answered with the catalog id
        "--requests",
        "10",
        "--input-tokens",
        "128",
        "--output-tokens",
        "50",
        "--batch-size",
        "4",
    )
    assert isinstance(rows, list) and [r["gpu"] for r in rows] == ["l4", "h100-sxm"]  # input order
    for row in rows:
        check_feasible(row)
        # per output token: the whole workload's energy over its requests x output tokens
        assert row["energy_per_output_token_joules"] == pytest.approx(row["energy_joules"] / (10 * 50))


def test_infeasible_estimate_has_a_reason_and_null_numbers(capsys) -> None:
    (row,) = run_json(capsys, "estimate", "--model", "llama-3.1-405b", "--gpu", "t4")
    assert set(row) >= ESTIMATE_KEYS
    assert row["feasible"] is False and isinstance(row["reason"], str) and "does not fit" in row["reason"]
    for key in ("energy_joules", "duration_seconds", "average_power_watts", "energy_per_output_token_joules"):
        assert row[key] is None, key


def test_training_estimate_has_null_energy_per_output_token(capsys) -> None:
    for sizes in (
        ("--tokens", "1e7", "--sequence-length", "1024", "--global-batch-size", "8"),
        ("--steps", "5", "--global-batch-size", "8", "--sequence-length", "1024"),
    ):
        (row,) = run_json(capsys, "estimate", "--model", "gpt2", "--gpu", "l4", "--task", "training", *sizes)
        check_feasible(row)
        assert row["energy_per_output_token_joules"] is None


def test_energy_is_the_board_energy_of_every_gpu_the_workload_uses(capsys) -> None:
    """Contract: energy of the whole workload on all its GPUs (board energy): with 8 GPUs per replica the
    average power lies between 8 idle boards and 8 boards at their power limit."""
    (gpu,) = run_json(capsys, "gpus", "h100-sxm")
    (row,) = run_json(
        capsys,
        "estimate",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-sxm",
        "--gpu-count",
        "8",
        "--requests",
        "64",
    )
    check_feasible(row)
    assert 8 * gpu["idle_power_w"] < row["average_power_watts"] <= 8 * gpu["tdp_w"]


def test_every_catalog_gpu_with_gpu_all(capsys) -> None:
    ids = [g["id"] for g in run_json(capsys, "gpus")]
    rows = run_json(capsys, "estimate", "--model", "gpt2", "--gpu", "all", "--requests", "2")
    assert sorted(r["gpu"] for r in rows) == sorted(ids)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"])
def test_every_contract_precision_is_accepted(capsys, precision: str) -> None:
    (row,) = run_json(capsys, "estimate", "--model", "gpt2", "--gpu", "b200", "--precision", precision)
    check_feasible(row)


def test_what_if_knobs_change_the_estimate_and_are_echoed(capsys) -> None:
    base = ("estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--requests", "20")
    (default,) = run_json(capsys, *base)
    (slow,) = run_json(capsys, *base, "--frequency-mhz", "1000")
    (capped,) = run_json(capsys, *base, "--power-limit-w", "300")
    assert slow["frequency_mhz"] == pytest.approx(1000) and capped["power_limit_w"] == pytest.approx(300)
    assert slow["duration_seconds"] > default["duration_seconds"]
    assert capped["average_power_watts"] <= 300


def test_model_file_yaml_and_json_describe_a_custom_architecture(tmp_path: Path, capsys) -> None:
    arch = {"layers": 4, "hidden": 512, "heads": 8, "ffn": 2048, "vocab": 32000}
    (tmp_path / "m.json").write_text(json.dumps(arch))
    (tmp_path / "m.yaml").write_text("".join(f"{k}: {v}\n" for k, v in arch.items()))
    rows = [
        run_json(capsys, "estimate", "--model-file", str(tmp_path / name), "--gpu", "l4", "--requests", "3")[
            0
        ]
        for name in ("m.json", "m.yaml")
    ]
    for row in rows:
        check_feasible(row)
    assert rows[0]["energy_joules"] == pytest.approx(rows[1]["energy_joules"])


# --- section 3: the workload CSV -----------------------------------------------------------------------

WORKLOAD_COLUMNS = [
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
    "steps",
    "global_batch_size",
    "sequence_length",
    "frequency_mhz",
    "power_limit_w",
]
ARCH_COLUMNS = [
    "arch_type",
    "params_b",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "ffn",
    "vocab",
    "moe_experts",
    "moe_active_experts",
    "moe_expert_ffn",
    "head_dim",
]
LAYOUT_COLUMNS = ["tensor_parallel", "expert_parallel", "data_parallel"]
MEASURED_COLUMNS = ["measured_energy_joules", "measured_duration_seconds", "measured_average_power_watts"]


def _csv(path: Path, header: list[str], rows: list[dict[str, object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(r.get(c, "")) for c in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_contract_column_is_read_and_rows_keep_their_order(tmp_path: Path, capsys) -> None:
    header = [*WORKLOAD_COLUMNS, *ARCH_COLUMNS, *LAYOUT_COLUMNS, *MEASURED_COLUMNS, "note"]
    inference = {
        "task": "inference",
        "requests": 8,
        "input_tokens": 256,
        "output_tokens": 32,
        "batch_size": 4,
    }
    rows = [
        {"model": "llama-3.1-8b", "gpu": "h100-sxm", "gpu_count": 2, "precision": "fp8", **inference},
        {"model": "gpt2", "gpu": "l4", "task": "training", "tokens": "1e6", "sequence_length": 512},
        {
            "model": "gpt2",
            "gpu": "l4",
            "task": "training",
            "steps": 3,
            "global_batch_size": 8,
            "sequence_length": 512,
        },
        {
            "model": "llama-3.1-8b",
            "gpu": "h100-sxm",
            "frequency_mhz": 1200,
            "power_limit_w": 500,
            **inference,
        },
        {  # a model not in the catalog: its architecture columns
            "model": "my-moe",
            "gpu": "h100-sxm",
            "arch_type": "decoder",
            "params_b": 2.1,
            "layers": 8,
            "hidden": 1024,
            "heads": 16,
            "kv_heads": 4,
            "vocab": 32000,
            "moe_experts": 8,
            "moe_active_experts": 2,
            "moe_expert_ffn": 1408,
            "head_dim": 64,
            **inference,
        },
        {  # the parallel layout of an inference replica
            "model": "qwen3-30b-a3b",
            "gpu": "h100-sxm",
            "gpu_count": 4,
            "tensor_parallel": 2,
            "expert_parallel": 4,
            "data_parallel": 2,
            **inference,
        },
        {"model": "llama-3.1-8b", "gpu": "l4", "measured_energy_joules": 900, "note": "kept", **inference},
    ]
    out = run_json(capsys, "estimate", "--from-csv", str(_csv(tmp_path / "w.csv", header, rows)))
    assert isinstance(out, list) and [r["gpu"] for r in out] == [r["gpu"] for r in rows]
    for row in out:
        check_feasible(row)
    assert [r["gpu_count"] for r in out] == [2, 1, 1, 1, 1, 4, 1]
    assert out[3]["frequency_mhz"] == pytest.approx(1200) and out[3]["power_limit_w"] == pytest.approx(500)
    assert out[5]["layout"] == {"tensor_parallel": 2, "data_parallel": 2, "expert_parallel": 4}
    assert out[1]["energy_per_output_token_joules"] is None and out[0]["energy_per_output_token_joules"] > 0


def test_empty_cells_take_the_defaults_of_the_flags(tmp_path: Path, capsys) -> None:
    """Contract: empty = default; the same defaults as ``estimate``'s flags."""
    header = [*WORKLOAD_COLUMNS]
    path = _csv(tmp_path / "w.csv", header, [{"model": "llama-3.1-8b", "gpu": "a10"}])
    (from_csv,) = run_json(capsys, "estimate", "--from-csv", str(path))
    (from_flags,) = run_json(capsys, "estimate", "--model", "llama-3.1-8b", "--gpu", "a10")
    assert from_csv["energy_joules"] == pytest.approx(from_flags["energy_joules"])


def test_architecture_columns_are_ignored_for_a_catalog_model(tmp_path: Path, capsys) -> None:
    header = ["model", "gpu", "requests", *ARCH_COLUMNS]
    arch = {"layers": 2, "hidden": 128, "heads": 2, "ffn": 256, "vocab": 1000}
    path = _csv(
        tmp_path / "w.csv",
        header,
        [
            {"model": "llama-3.1-8b", "gpu": "l4", "requests": 3},
            {"model": "llama-3.1-8b", "gpu": "l4", "requests": 3, **arch},
        ],
    )
    plain, with_arch = run_json(capsys, "estimate", "--from-csv", str(path))
    assert with_arch["energy_joules"] == pytest.approx(plain["energy_joules"])


def test_a_measurement_file_validates_and_its_other_columns_are_carried(tmp_path: Path, capsys) -> None:
    header = ["source", "config", "model", "gpu", "requests", "output_tokens", *MEASURED_COLUMNS]
    rows = [
        {"source": "site-a", "config": "c1", "model": "llama-3.1-8b", "gpu": g, "requests": 20, "output_tokens": 64,
         "measured_energy_joules": e, "measured_duration_seconds": t, "measured_average_power_watts": e / t}
        for g, e, t in (("h100-sxm", 3000.0, 6.0), ("l4", 4000.0, 30.0))
    ]  # fmt: skip
    report = run_json(capsys, "validate", str(_csv(tmp_path / "m.csv", header, rows)))
    assert report["overall"]["rows"] == 2 and set(report["by_source"]) == {"site-a"}
    for key in ("energy_mape_pct", "time_mape_pct", "power_mape_pct"):
        assert isinstance(report["overall"][key], float), key
    assert report["ranking"]["comparable_pairs"] == 1  # paired by config across GPU types


def test_calibrate_writes_a_profile_every_estimating_command_takes(tmp_path: Path, capsys) -> None:
    header = ["model", "gpu", "requests", "output_tokens", "measured_energy_joules"]
    rows = [
        {"model": "llama-3.1-8b", "gpu": g, "requests": 20, "output_tokens": 64, "measured_energy_joules": e}
        for g, e in (("h100-sxm", 3000.0), ("l4", 4000.0), ("a10", 5000.0))
    ]
    measured = _csv(tmp_path / "m.csv", header, rows)
    profile = tmp_path / "p.json"
    doc = run_json(
        capsys, "calibrate", str(measured), "-o", str(profile), "--max-evaluations", "2", "--force"
    )
    assert doc["written"] is True and strict_json(profile.read_text())["name"] == "p"
    (row,) = run_json(capsys, "estimate", "--model", "llama-3.1-8b", "--gpu", "l4", "--profile", str(profile))
    check_feasible(row)
    run_json(capsys, "validate", str(measured), "--profile", str(profile))
    run_json(
        capsys, "sweep", "--gpu", "l4", "--model", "llama-3.1-8b", "--points", "2", "--profile", str(profile)
    )


# --- section 3a: catalog names, through the command -----------------------------------------------------

CONTRACT_GPUS = [
    "v100-sxm2-32gb",
    "t4",
    "a10",
    "a10g",
    "l4",
    "l40s",
    "a100-pcie-40gb",
    "a100-sxm4-40gb",
    "a100-sxm4-80gb",
    "a100-pcie-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h200",
    "b200",
    "mi300x",
]


def test_gpu_ids_are_the_contracts_lowercase_ids(capsys) -> None:
    ids = [g["id"] for g in run_json(capsys, "gpus")]
    assert set(CONTRACT_GPUS) <= set(ids) and all(i == i.lower() for i in ids)
    assert [g["id"] for g in run_json(capsys, "gpus", *CONTRACT_GPUS)] == CONTRACT_GPUS
    assert len(run_json(capsys, "gpus", "h100")) == 1 and len(run_json(capsys, "gpus", "a100")) == 1


def test_names_that_resolve_to_one_entry_list_it_once(capsys) -> None:
    """``gpus h100 h100-sxm`` listed h100-sxm twice (as ``estimate --gpu h100 --gpu h100-sxm`` does not)."""
    assert [g["id"] for g in run_json(capsys, "gpus", "h100", "l4", "h100-sxm", "H100")] == ["h100-sxm", "l4"]
    named = ("llama-3.1-8b", "gpt2", "meta-llama/Llama-3.1-8B-Instruct")
    assert [m["id"] for m in run_json(capsys, "models", *named)] == ["llama-3.1-8b", "gpt2"]


@pytest.mark.parametrize(
    "name",
    [
        "meta-llama/Llama-3.1-8B-Instruct",
        "META-LLAMA/LLAMA-3.1-8B-INSTRUCT",
        "llama-3.1-8b",
        "bert-large",
        "gpt2",
        "opt-1.3b",
        "qwen2-1.5b",
        "resnet-50",
        "resnet-101",
        "vit-large",
        "mobilenetv3",
    ],
)
def test_model_names_resolve_through_the_command(capsys, name: str) -> None:
    (entry,) = run_json(capsys, "models", name)
    assert entry["id"]


def test_models_json_is_strict_json(capsys) -> None:
    models = run_json(capsys, "models")
    assert models and all(isinstance(m["id"], str) for m in models)


# --- section 1: plan --json (its fields: tests/planner/test_outputs.py) -----------------------------------


@pytest.mark.parametrize(
    "extra",
    [(), ("--fleet-mode", "elastic", "--max-wait-seconds", "inf"), ("--power-limit-w", "l4=60,72")],
    ids=["static", "elastic-no-wait-limit", "power-sweep"],
)
def test_plan_json_is_strict_json_with_the_contract_fields(capsys, extra: tuple[str, ...]) -> None:
    doc = run_json(capsys, "plan", "--demo", "--demo-jobs", "20", *extra)
    assert {p["name"] for p in doc["policies"]} >= {"energy-aware", "first-fit", "fastest-gpu"}
    for key in ("horizon_seconds", "lower_bound_energy_joules", "lower_bound_fleet_energy_joules"):
        assert isinstance(doc[key], float), key


class _Started(BaseException):
    """Stops ``extender`` where it would bind its port (not an Exception: ``main`` lets it through)."""


def test_extender_takes_a_profile_as_every_estimating_command(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contract: ``--profile PROFILE`` on any command uses the calibrated terms; the extender scored with
    ENERGAIZER_PROFILE only (``--profile`` was 'no such option'). The flag replaces the variable; a bad
    profile is a start-up error naming it."""
    from energaizer_operator.extender import server

    profile = tmp_path / "p.json"
    profile.write_text('{"name": "site", "compute_efficiency": 0.5}')
    used: list[str | None] = []

    def make_app(scorer: Any, cache: Any) -> Any:
        used.append(scorer.profile)
        raise _Started

    monkeypatch.setattr(server, "make_app", make_app)
    monkeypatch.setenv("ENERGAIZER_PROFILE", str(tmp_path / "other.json"))
    with pytest.raises(_Started):
        main(["extender", "--no-node-cache", "--profile", str(profile)])
    assert used == [str(profile)]
    with pytest.raises(SystemExit) as exc:
        main(["extender", "--no-node-cache", "--profile", str(tmp_path / "missing.json")])
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"error: profile: file not found: {tmp_path / 'missing.json'}\n"
