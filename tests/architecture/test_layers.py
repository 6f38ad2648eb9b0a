"""The layers contract of ``.importlinter`` holds (``lint-imports`` in CI checks the same)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_imports_a_layer_above_its_own(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extra")
    monkeypatch.chdir(ROOT)
    code = cli.lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out
