"""What a new user sees: help and version, whole ids in tables at any width, sorted and marked estimates,
defaults shown and echoed, and a calibrated profile that names its own data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.cli_support import run_cli

DATA = Path(__file__).resolve().parents[2] / "energaizer" / "data" / "measurements"


def test_bare_command_prints_help_not_an_error() -> None:
    r = run_cli()
    assert r.code == 0 and r.err == ""
    assert "Usage: energaizer" in r.out and "estimate" in r.out


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    from importlib.metadata import version

    r = run_cli(flag)
    assert r.code == 0 and r.out.strip() == f"energaizer {version('energaizer')}"


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["estimate", "-h"], ["plan", "-h"], ["sweep", "-h"]])
def test_help_flags(args: list[str]) -> None:
    r = run_cli(*args)
    assert r.code == 0 and "Usage: energaizer" in r.out


def _table_lines(text: str) -> list[list[str]]:
    """The cells of each table line, as printed (a folded row takes several lines)."""
    return [
        [c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")
    ]


def _table_rows(text: str) -> list[list[str]]:
    """The table's rows; a line with an empty id continues the row above (a folded cell)."""
    rows: list[list[str]] = []
    for cells in _table_lines(text):
        if rows and not cells[0]:
            rows[-1] = [" ".join(filter(None, pair)) for pair in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


@pytest.mark.parametrize("columns", ["60", "80", "120"])
@pytest.mark.parametrize(
    ("args", "ids"),
    [
        (["gpus"], ["v100-sxm2-32gb", "a100-sxm4-80gb", "a100-pcie-40gb"]),
        (["models"], ["llama-3.1-8b", "qwen3-235b-a22b"]),
        (["estimate", "--model", "llama-3.1-8b", "--gpu", "all"], ["v100-sxm2-32gb", "a100-sxm4-80gb"]),
        (["plan", "--demo", "--demo-jobs", "20"], ["energy-aware", "first-fit", "fastest-gpu"]),
    ],
)
def test_ids_are_never_cut(args: list[str], ids: list[str], columns: str) -> None:
    r = run_cli(*args, env={"COLUMNS": columns})
    assert r.code == 0, r.err
    first_cells = {row[0] for row in _table_rows(r.out)}
    for i in ids:
        assert i in first_cells, (i, sorted(first_cells)[:10])
    assert "…" not in "".join(line.split("│")[1] for line in r.out.splitlines() if line.startswith("│"))


def test_pipe_output_is_not_wrapped() -> None:
    """No COLUMNS and no terminal (a pipe, a CI log): each table row on one line, however wide."""
    r = run_cli("gpus", "--wide", env={"COLUMNS": None})
    assert r.code == 0, r.err
    rows = _table_lines(r.out)
    assert len(rows) >= 19 and all(row[0] for row in rows), "a row continued on a second line"
    assert all(len(row) == 11 for row in rows)
    assert max(len(line) for line in r.out.splitlines()) > 120  # wider than any default terminal
    folded = _table_lines(run_cli("gpus", "--wide", env={"COLUMNS": "80"}).out)
    assert not all(row[0] for row in folded)  # the same table on an 80-column terminal folds


SWEEP = ["sweep", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--points", "4"]


def test_sweep_prints_as_the_other_tables() -> None:
    """sweep printed on a console of its own: in a pipe its closing line was wrapped at 80 columns, and on
    a narrow terminal (30 columns) its settings and figures were cut to ``5…``. Now, as the other commands:
    nothing wrapped in a pipe, cells folded, never cut, on a terminal."""
    doc = json.loads(run_cli(*SWEEP, "--json").out)
    settings = [f"{x['frequency_mhz']:.0f}" for x in doc["clock_sweep"]]
    settings += [f"{x['power_limit_w']:.0f}" for x in doc["power_limit_sweep"]]
    piped = run_cli(*SWEEP, env={"COLUMNS": None})
    assert piped.code == 0, piped.err
    (summary,) = [line for line in piped.out.splitlines() if "energy-optimal" in line]
    assert summary.startswith("energy-optimal clock ") and summary.endswith(" W)"), piped.out
    assert [row[0] for row in _table_rows(piped.out)] == settings
    narrow = run_cli(*SWEEP, env={"COLUMNS": "30"})
    assert narrow.code == 0, narrow.err
    assert "…" not in narrow.out, narrow.out
    assert [row[0] for row in _table_rows(narrow.out)] == settings


def test_estimate_sorted_by_energy_with_best_and_fastest_marked() -> None:
    args = ["estimate", "--model", "llama-3.1-8b", "--requests", "20"]
    for gpu in ("h100-sxm", "l4", "v100", "t4"):
        args += ["--gpu", gpu]
    r = run_cli(*args)
    assert r.code == 0, r.err
    rows = _table_rows(r.out)
    assert sorted(row[0] for row in rows) == ["h100-sxm", "l4", "t4", "v100-sxm2-32gb"]
    assert rows[-1][0] == "t4" and rows[-1][1] == "no"  # infeasible last
    js = [e for e in json.loads(run_cli(*args, "--json").out) if e["feasible"]]
    energy = {e["gpu"]: e["energy_joules"] for e in js}
    duration = {e["gpu"]: e["duration_seconds"] for e in js}
    assert [row[0] for row in rows if row[1] == "yes"] == sorted(energy, key=energy.get)
    best = {row[0]: row[-1] for row in rows}
    assert "lowest energy" in best[min(energy, key=energy.get)]
    assert "fastest" in best[min(duration, key=duration.get)]
    assert best["t4"] == ""


def test_gpu_named_twice_is_listed_once() -> None:
    r = run_cli("estimate", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpu", "all", "--json")
    assert r.code == 0, r.err
    gpus = [e["gpu"] for e in json.loads(r.out)]
    assert gpus[0] == "h100-sxm" and gpus.count("h100-sxm") == 1 and len(gpus) == len(set(gpus))
    r = run_cli("estimate", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpu", "all")
    assert [row[0] for row in _table_rows(r.out)].count("h100-sxm") == 1


def test_table_names_a_precision_fallback_under_the_table() -> None:
    """A feasible row on an explicit fallback (fp8 on a Volta: weight-only kernels) says so in the table
    view too, not only in the JSON ``reason``."""
    r = run_cli(
        "estimate",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "v100-sxm2-32gb",
        "--gpu",
        "h100-sxm",
        "--precision",
        "fp8",
        "--requests",
        "4",
    )
    assert r.code == 0, r.err
    notes = [ln for ln in r.out.splitlines() if ln.startswith("v100-sxm2-32gb:")]
    assert len(notes) == 1 and "fp8 is not supported by v100-sxm2-32gb" in notes[0]
    assert not any(ln.startswith("h100-sxm:") for ln in r.out.splitlines())


def test_from_csv_table_shows_line_and_model(tmp_path: Path) -> None:
    csv = tmp_path / "w.csv"
    csv.write_text("model,gpu,requests\nllama-3.1-8b,h100-sxm,10\n\nqwen3-8b,l4,5\n")
    r = run_cli("estimate", "--from-csv", str(csv))
    assert r.code == 0, r.err
    rows = _table_rows(r.out)
    assert [row[:3] for row in rows] == [["2", "llama-3.1-8b", "h100-sxm"], ["4", "qwen3-8b", "l4"]]


def test_from_csv_over_worker_processes_prints_what_one_process_prints(tmp_path: Path) -> None:
    from energaizer.workers import MIN_ROWS_PER_WORKER

    csv = tmp_path / "w.csv"
    lines = ["model,gpu,gpu_count,task,requests,input_tokens,output_tokens,batch_size,tokens,sequence_length"]
    kinds = [
        "llama-3.1-8b,h100-sxm,1,inference,{n},{k},128,8,,",
        "mixtral-8x7b,a100-sxm4-80gb,2,inference,{n},512,{k},32,,",
        "gpt2,l4,1,training,,,,,{t},1024",
        "resnet-50,t4,1,inference,{n},,,32,,",
        "llama-3.1-70b,l4,1,inference,{n},{k},64,1,,",  # does not fit: a NaN row between the others
    ]
    for i in range(2 * MIN_ROWS_PER_WORKER + 1):
        lines.append(kinds[i % len(kinds)].format(n=1 + i % 97, k=16 + i % 1000, t=10**6 + i))
    csv.write_text("\n".join(lines) + "\n")
    one = run_cli("estimate", "--from-csv", str(csv), "--json", "--ops", "--workers", "1")
    two = run_cli("estimate", "--from-csv", str(csv), "--json", "--ops", "--workers", "2")
    assert one.code == 0 and two.code == 0, one.err + two.err
    assert two.out == one.out
    rows = json.loads(one.out)
    assert len(rows) == len(lines) - 1 and sum(not r["feasible"] for r in rows) == len(rows) // 5
    # without --ops each worker writes its part's JSON: the same text, less the ops
    plain = [run_cli("estimate", "--from-csv", str(csv), "--json", "--workers", w) for w in ("1", "2")]
    assert plain[0].code == 0 and plain[1].code == 0, plain[0].err + plain[1].err
    assert plain[1].out == plain[0].out
    assert json.loads(plain[1].out) == [{k: v for k, v in row.items() if k != "ops"} for row in rows]


def test_defaults_in_help_and_echoed() -> None:
    from energaizer.cli.estimate_cmd import INFERENCE_DEFAULTS, TRAINING_DEFAULTS
    from energaizer.workload import InferenceSpec, TrainingSpec

    assert {k: InferenceSpec().model_dump()[k] for k in INFERENCE_DEFAULTS} == INFERENCE_DEFAULTS
    assert {k: TrainingSpec(steps=1).model_dump()[k] for k in TRAINING_DEFAULTS} == TRAINING_DEFAULTS
    r = run_cli("estimate", "--help", env={"COLUMNS": "200"})
    text = " ".join(r.out.split())
    for flag, value in (
        ("--requests", 1),
        ("--input-tokens", 512),
        ("--batch-size", 1),
        ("--sequence-length", 2048),
    ):
        assert re.search(rf"{flag}[^\[]*\[default: {value}\]", text, re.IGNORECASE), flag
    r = run_cli("estimate", "--model", "llama-3.1-8b", "--gpu", "l4", "--requests", "4")
    assert (
        "defaults used" in r.out
        and "--batch-size 1" in r.out
        and "--requests" not in r.out.split("defaults")[1]
    )
    r = run_cli(
        "estimate",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "l4",
        "--requests",
        "4",
        "--input-tokens",
        "8",
        "--output-tokens",
        "8",
        "--batch-size",
        "2",
    )
    assert "defaults used" not in r.out


def test_calibrated_profile_describes_its_own_data(tmp_path: Path) -> None:
    src = (DATA / "artifact.csv").read_text().splitlines()
    data = tmp_path / "mine.csv"
    data.write_text("\n".join(src[:41]) + "\n")
    out = tmp_path / "p.json"
    r = run_cli(
        "calibrate",
        str(data),
        "-o",
        str(out),
        "--parameters",
        "launch_overhead_us",
        "--max-evaluations",
        "5",
        "--force",  # these rows are in the default profile's fit: the refit need not be better held out
    )
    assert r.code == 0, r.err
    profile = json.loads(out.read_text())
    assert "mine.csv" in profile["description"] and "40 measured rows" in profile["description"]
    assert sum(profile["fitted_on"].values()) == 40
    assert "ML.ENERGY" not in profile["description"]


def test_validate_shows_a_dash_not_nan_where_the_rows_give_no_error(tmp_path: Path) -> None:
    """Rows without measured durations have no time or power error, and a row too large for its GPU no
    estimate: the table shows "-" for them, as estimate's tables do, not "nan"."""
    path = tmp_path / "m.csv"
    path.write_text(
        "model,gpu,requests,measured_energy_joules\n"
        "llama-3.1-8b,h100-sxm,10,5000\nllama-3.1-405b,t4,10,5000\n"
    )
    r = run_cli("validate", str(path))
    assert r.code == 0, r.err
    assert "nan" not in r.out.lower() and " - " in r.out, r.out


def test_absurdly_small_measurements_give_no_numpy_warnings(tmp_path: Path) -> None:
    """A measured energy of 1e-320 J overflows the error ratios: no RuntimeWarning lines on stderr."""
    path = tmp_path / "m.csv"
    path.write_text(
        "model,gpu,requests,output_tokens,measured_energy_joules,measured_duration_seconds\n"
        "llama-3.1-8b,h100-sxm,10,0,1e-320,1e-320\nllama-3.1-8b,a100-sxm4-80gb,10,0,5000,10\n"
    )
    r = run_cli("validate", str(path), "--json")
    assert r.code == 0 and r.err == "", r.err
    r = run_cli("calibrate", str(path), "-o", str(tmp_path / "p.json"), "--max-evaluations", "2", "--force")
    assert r.code == 0 and r.err == "", r.err


def test_a_reader_that_leaves_ends_the_command_quietly_with_sigpipe(tmp_path: Path) -> None:
    """`energaizer estimate --from-csv big.csv --json | head`: the CLI ends as Unix filters do (SIGPIPE,
    status 141 in the shell), with nothing on stderr; not the silent exit 1 that means a bug here."""
    import os
    import signal
    import subprocess
    import sys

    csv = tmp_path / "w.csv"  # ~1 MB of JSON, far more than a pipe holds: the write meets the closed pipe
    csv.write_text("model,gpu,requests\n" + "gpt2,l4,10\n" * 1000)
    env = {k: v for k, v in os.environ.items() if k != "ENERGAIZER_DEBUG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "energaizer", "estimate", "--from-csv", str(csv), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"[\n"
    proc.stdout.close()  # the reader leaves
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == -signal.SIGPIPE, err
    assert err == b""


def test_a_long_csv_table_is_plain_columns_with_the_cells_of_the_boxed_one(tmp_path: Path) -> None:
    """Beyond LONG_TABLE_ROWS rows the table is plain text columns (a boxed rich table of 20,000 rows took
    ~25 s to lay out): the same header and cells, one line per row in file order, then the reasons."""
    from energaizer.cli.common import LONG_TABLE_ROWS

    kinds = [
        "llama-3.1-8b,h100-sxm,100",
        "gpt2,t4,10",
        "llama-3.1-70b,l4,5",
    ]  # t4: a bf16 fallback; l4: no fit
    head = "model,gpu,requests\n"
    short, long = tmp_path / "short.csv", tmp_path / "long.csv"
    short.write_text(head + "\n".join(kinds) + "\n")
    long.write_text(head + "\n".join(kinds[i % 3] for i in range(LONG_TABLE_ROWS + 2)) + "\n")
    boxed = run_cli("estimate", "--from-csv", str(short), env={"COLUMNS": "200"})
    plain = run_cli("estimate", "--from-csv", str(long), env={"COLUMNS": "200"})
    assert boxed.code == 0 and plain.code == 0, boxed.err + plain.err
    lines = plain.out.splitlines()
    assert lines[0] == f"long.csv: {LONG_TABLE_ROWS + 2} rows" and "│" not in plain.out
    header = re.split(r"\s{2,}", lines[1].strip())
    assert header == ["line", "model", "GPU", "feasible", "energy", "time", "avg power", "J/output token"]
    body = [re.split(r"\s{2,}", line.strip()) for line in lines[2 : 2 + LONG_TABLE_ROWS + 2]]
    assert [row[0] for row in body] == [str(n) for n in range(2, LONG_TABLE_ROWS + 4)]
    assert body[:3] == _table_rows(boxed.out)  # the boxed table's cells, row for row
    notes = lines[2 + LONG_TABLE_ROWS + 2 :]
    assert len(notes) == 2 * (LONG_TABLE_ROWS + 2) // 3 and notes[0].startswith("row 3 t4: precision bf16")
    assert notes[1].startswith("row 4 l4: does not fit")


def test_the_commands_that_talk_over_sockets_keep_sigpipe_ignored() -> None:
    """The operator, the extender and export-measurements (a Kubernetes API client) keep Python's SIGPIPE
    handling, where a peer that leaves raises in the HTTP code; the list names registered commands (a
    renamed one would silently lose its exclusion); the other commands are the filters."""
    import typer.main

    from energaizer.cli.app import NETWORK_COMMANDS, app

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert commands >= NETWORK_COMMANDS
    assert commands - NETWORK_COMMANDS >= {
        "estimate",
        "gpus",
        "models",
        "plan",
        "sweep",
        "validate",
        "calibrate",
    }


def test_plan_demo_defaults_are_the_demo_configs() -> None:
    """``plan --demo`` with no ``--demo-load``/``--demo-jobs`` builds the trace ``DemoConfig()`` builds:
    one default for the CLI, the library and the benchmarks (they disagreed, 0.5 vs 0.3)."""
    from energaizer.planner.demo import DemoConfig

    config = DemoConfig()
    base = ["plan", "--demo", "--policy", "first-fit", "--json"]
    implicit = run_cli(*base)
    explicit = run_cli(*base, "--demo-jobs", str(config.jobs), "--demo-load", repr(config.load))
    assert implicit.code == 0 and explicit.code == 0, (implicit.err, explicit.err)
    results = [json.loads(r.out) for r in (implicit, explicit)]
    for result in results:  # the simulation's own run time (wall clock) is the one figure that may differ
        for policy in result["policies"]:
            policy.pop("simulation_seconds")
    assert results[0] == results[1]
