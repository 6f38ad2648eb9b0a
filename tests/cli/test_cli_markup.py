"""Text from the user's files (a source, a model id, a pool or file name, an extra catalog's entries) that
looks like rich markup (``[/x]``, ``[b]``) is printed as written: it was parsed as markup, so a closing tag
without its opening one ended the command with ``error: internal: MarkupError`` (exit 1), and a style tag
vanished from the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from energaizer.cli.app import main
from tests.cli.cli_support import run_cli

ARCH = "4,512,8,2048,32000"


def _out(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    main(list(args))
    out, err = capsys.readouterr()
    assert err == "", err
    return out


def test_validate_prints_sources_and_model_ids_as_written(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "model,gpu,layers,hidden,heads,ffn,vocab,source,measured_energy_joules\n"
        f"[/m],l4,{ARCH},[/x],100\n[b]m2,l4,{ARCH},[i]y,100\n"
    )
    out = _out(capsys, "validate", str(path))
    for text in ("source [/x]", "source [i]y", "[/m]", "[b]m2"):
        assert text in out, text


def test_estimate_prints_a_model_files_id_as_written(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("id: '[/]'\nlayers: 4\nhidden: 512\nheads: 8\nffn: 2048\nvocab: 32000\n")
    assert "[/] inference" in _out(capsys, "estimate", "--model-file", str(path), "--gpu", "l4")


def test_plan_prints_pool_and_trace_names_as_written(tmp_path: Path, capsys, monkeypatch) -> None:
    # relative names: the title is folded at spaces to the tables' width, and where an absolute temporary
    # path put the fold (its length varies by machine and run) "[/p] 1x2" could be split over two lines
    monkeypatch.chdir(tmp_path)
    Path("pools.yaml").write_text("- {gpu: l4, nodes: 1, gpus_per_node: 2, name: '[/p]'}\n")
    Path("[b]trace.csv").write_text("submit_time_s,gpu_count,duration_s\n0,1,10\n")
    out = _out(
        capsys, "plan", "--pools", "pools.yaml", "--trace", "[b]trace.csv", "--power-limit-w", "[/p]=60,70"
    )
    assert "[b]trace.csv" in out and "[/p] 1x2" in out  # the title (folded to the tables' width)
    assert "[/p] (2)" in out  # the utilisation table's column
    assert "│ [/p] " in out  # the power-limit sweep's rows


def test_gpus_and_models_print_an_extra_catalogs_entries_as_written(tmp_path: Path) -> None:
    """A subprocess: an extra catalog changes the process's catalog."""
    catalog = tmp_path / "site.yaml"
    catalog.write_text(
        "gpus:\n  - {id: '[/g]', name: '[b]Site GPU[/b]', architecture: ada, sm_count: 142, max_clock_mhz: 2505,\n     tensor_clock_mhz: 2505, interconnect_bw_gbs: 64,"
        "     memory_gb: 48, memory_bw_gbs: 960, l2_mb: 96, peak_tflops: {fp32: 91.1, bf16: 364.2}, tdp_w: 300,\n"
        "     idle_power_w: 30}\n"
        "models:\n  - {id: '[/m]', arch_type: decoder, layers: 4, hidden: 512, heads: 8, ffn: 2048, vocab: 32000}\n"
    )
    gpus = run_cli("gpus", "--catalog", str(catalog), "--wide", "[/g]", env={"COLUMNS": "200"})
    assert gpus.code == 0 and "[/g]" in gpus.out and "[b]Site GPU[/b]" in gpus.out, gpus.err
    models = run_cli("models", "--catalog", str(catalog), "[/m]", env={"COLUMNS": "200"})
    assert models.code == 0 and "[/m]" in models.out, models.err
