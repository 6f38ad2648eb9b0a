"""``estimate --json --ops``: the per-operation figures, only when asked, one shape for every row."""

from __future__ import annotations

import json

import pytest

from energaizer.cli.app import main


def _json_of(capsys, *args: str):
    main(list(args))
    return json.loads(capsys.readouterr().out)


def test_cli_writes_ops_only_when_asked(tmp_path, capsys):
    args = ["estimate", "--model", "gpt2", "--gpu", "a10", "--gpu", "l4", "--requests", "4", "--json"]
    plain = _json_of(capsys, *args)
    assert all("ops" not in row for row in plain)
    with_ops = _json_of(capsys, *args, "--ops")
    assert [set(r) - {"ops"} for r in with_ops] == [set(r) for r in plain]
    assert with_ops[0]["ops"]["mlp_up"]["energy_joules"] > 0
    csv = tmp_path / "w.csv"
    csv.write_text("model,gpu,task,requests\ngpt2,a10,inference,4\nresnet-50,l4,inference,16\n")
    rows = _json_of(capsys, "estimate", "--from-csv", str(csv), "--json", "--ops")
    assert rows[0]["ops"].keys() == rows[1]["ops"].keys()  # one shape for every row
    assert rows[0]["ops"]["conv"]["energy_joules"] == 0.0 and rows[1]["ops"]["conv"]["energy_joules"] > 0


def test_ops_without_json_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["estimate", "--model", "gpt2", "--gpu", "a10", "--ops"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --ops: adds a key to the JSON output: use it with --json"]
