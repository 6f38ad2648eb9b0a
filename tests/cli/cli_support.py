"""Running the ``energaizer`` command as a user runs it (a subprocess), for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None, timeout: float = 300
) -> Run:
    """``python -m energaizer ARGS`` in a subprocess (generous timeout: CI is a loaded 2-CPU machine)."""
    full_env = {k: v for k, v in os.environ.items() if k != "ENERGAIZER_DEBUG"}
    full_env.update({"COLUMNS": "100", **(env or {})})
    for key in [k for k, v in full_env.items() if v is None]:  # None: unset it
        del full_env[key]
    r = subprocess.run(
        [sys.executable, "-m", "energaizer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    return Run(r.returncode, r.stdout, r.stderr)
