"""Output paths (``-o``, ``--csv``, ``--plots``) that cannot or must not be written: one line ``error: <flag>:
...``, exit 2, nothing lost. Run in-process (``main``), as a user's invocation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energaizer.catalog.loader import reset_extra
from energaizer.cli import measurements_cmd
from energaizer.cli.app import main
from tests.cli.conftest import MEASURED_HEADER


def _error_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert exc.value.code == 2 and len(lines) == 1, (exc.value.code, err)
    assert out == "" and lines[0].startswith("error: "), (out, err)
    return lines[0]


@pytest.mark.parametrize("spelling", ["same", "link"])
def test_calibrate_never_writes_the_profile_over_a_measurement_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    """``calibrate m.csv -o m.csv`` replaced the measurements with the profile JSON (exit 0)."""
    data = tmp_path / "m.csv"
    text = MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,500\nllama-3.1-8b,l4,10,128,64,1,900\n"
    data.write_text(text)
    output = data
    if spelling == "link":  # the same file by another name
        output = tmp_path / "profile.json"
        output.hardlink_to(data)
    line = _error_of(capsys, "calibrate", str(data), "-o", str(output), "--force", "--max-evaluations", "1")
    assert line == (
        f"error: --output: {output} is the measurement CSV {data}: the profile would overwrite it; "
        "give another file"
    )
    assert data.read_text() == text


def test_calibrate_never_writes_the_profile_over_its_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``calibrate m.csv -o catalog.yaml --catalog catalog.yaml`` replaced the catalog with the profile JSON,
    while ``-o`` naming a measurement CSV was refused."""
    data = tmp_path / "m.csv"
    data.write_text(
        MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,500\nllama-3.1-8b,l4,10,128,64,1,900\n"
    )
    catalog = tmp_path / "catalog.yaml"
    text = "# our own GPUs\ngpus: []\n"
    catalog.write_text(text)
    try:
        line = _error_of(
            capsys,
            "calibrate",
            str(data),
            "-o",
            str(catalog),
            "--catalog",
            str(catalog),
            "--force",
            "--max-evaluations",
            "1",
        )
    finally:  # a catalog loaded in this process would stay loaded for the tests after this one
        reset_extra()
    assert line == (
        f"error: --output: {catalog} is the --catalog file {catalog}: the profile would overwrite it; "
        "give another file"
    )
    assert catalog.read_text() == text


def _no_cluster(*_args: object) -> list[dict]:
    raise AssertionError("the cluster was asked before the output path was checked")


@pytest.mark.parametrize(
    ("output", "needle"),
    [("no-such-folder/m.csv", "folder no-such-folder does not exist"), (".", ". is a directory")],
)
def test_export_measurements_checks_its_output_before_asking_the_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], output: str, needle: str
) -> None:
    """It listed every AIJob of the cluster first, then failed at the write with ``error: <path>: No such
    file or directory``, naming no flag (or, without credentials, blamed KUBECONFIG)."""
    monkeypatch.setattr(measurements_cmd, "list_aijobs", _no_cluster)
    line = _error_of(capsys, "export-measurements", "-o", output)
    assert line.startswith("error: --output: ") and needle in line, line


def test_export_measurements_names_output_when_the_write_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk at the write: an ``internal`` error (exit 1, "a bug") before."""
    job = {
        "metadata": {"name": "a", "namespace": "ml"},
        "spec": {"workload": {"model": "llama-3.1-8b", "inference": {"requests": 5}}},
        "status": {"phase": "Succeeded", "measured": {"energyJoules": 600.0, "gpuType": "h100-sxm"}},
    }
    monkeypatch.setattr(measurements_cmd, "list_aijobs", lambda *_: [job])
    line = _error_of(capsys, "export-measurements", "-o", "/dev/full")
    assert line == "error: --output: cannot write /dev/full: No space left on device"


def test_calibrate_names_a_profile_after_a_file_name_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file name with a byte that is not UTF-8 (``p\\xff.json``; Python holds it as a lone surrogate) went
    into the profile's name and description, which cannot be written as JSON: an ``internal`` error, exit 1,
    nothing written. Now the byte is shown as U+FFFD and the profile is written under the name given."""
    data = tmp_path / "m\udcff.csv"  # the bytes b"m\xff.csv" on disk
    data.write_text(
        MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,500\nllama-3.1-8b,l4,10,128,64,1,900\n"
    )
    output = tmp_path / "p\udcff.json"
    main(["calibrate", str(data), "-o", str(output), "--force", "--max-evaluations", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    written = json.loads(output.read_bytes())
    assert doc["written"] is True and written["name"] == doc["profile"]["name"] == "p\ufffd"
    assert "from m\ufffd.csv" in written["description"]


def test_plan_never_writes_its_csv_over_its_trace_or_pools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``plan --trace jobs.csv --csv jobs.csv`` replaced the trace with the per-policy metrics (exit 0)."""
    trace = tmp_path / "jobs.csv"
    trace.write_text("submit_time_s,gpu_count,duration_s\n0,1,10\n")
    pools = tmp_path / "pools.yaml"
    pools.write_text("- {gpu: l4, nodes: 1, gpus_per_node: 2}\n")
    for flag, path in (("--trace", trace), ("--pools", pools)):
        before = path.read_text()
        line = _error_of(capsys, "plan", "--trace", str(trace), "--pools", str(pools), "--csv", str(path))
        assert (
            line
            == f"error: --csv: {path} is the {flag} file: the metrics would overwrite it; give another file"
        )
        assert path.read_text() == before
