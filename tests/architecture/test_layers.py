"""The layers contract of ``.importlinter`` holds (``lint-imports`` in CI checks the same)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_imports_a_layer_above_its_own() -> None:
    # In a process of its own: import-linter configures logging with logging.config.dictConfig, which
    # disables every logger that exists already (the operator's, imported at collection), so a later test
    # reading the operator's log lines with caplog saw none.
    pytest.importorskip("importlinter.cli", reason="import-linter is in the test extra")
    config = str(ROOT / ".importlinter")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={config!r}, no_cache=True, no_logo=True))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "1 kept, 0 broken" in run.stdout, run.stdout + run.stderr
