"""Running the ``energaizer`` command as a user runs it (a subprocess), for the CLI tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FORKS = Path(__file__).with_name("cli_forks.py")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def _cli_env(env: dict[str, str | None] | None) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if k != "ENERGAIZER_DEBUG"}
    full_env.update({"COLUMNS": "100", **(env or {})})
    return {k: v for k, v in full_env.items() if v is not None}  # None: unset it


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None, timeout: float = 300
) -> Run:
    """``python -m energaizer ARGS`` in a subprocess (generous timeout: CI is a loaded 2-CPU machine)."""
    r = subprocess.run(
        [sys.executable, "-m", "energaizer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_cli_env(env),
        timeout=timeout,
    )
    return Run(r.returncode, r.stdout, r.stderr)


def run_cli_many(invocations: list[list[str]], cwd: Path, jobs: int, timeout: float = 900) -> list[Run]:
    """Each invocation's run in a process of its own, as :func:`run_cli` runs it, ``jobs`` at a time: forks
    of one process that has imported the CLI (``cli_forks.py``), not one cold start per invocation."""
    request = json.dumps([{"args": args, "cwd": str(cwd)} for args in invocations])
    with tempfile.TemporaryDirectory(prefix="energaizer-cli-forks-") as outputs:
        return _run_forks(request, outputs, jobs, timeout)


def _run_forks(request: str, outputs: str, jobs: int, timeout: float) -> list[Run]:
    server = subprocess.Popen(
        [sys.executable, str(FORKS), str(jobs), outputs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_cli_env(None),
        start_new_session=True,  # its children too are killed on a timeout
    )
    try:
        answer, _ = server.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate()
        raise
    assert server.returncode == 0, f"cli_forks.py failed ({server.returncode})"
    runs = []
    for r in json.loads(answer):
        # read as subprocess.run(text=True) decodes a pipe: the locale's encoding, universal newlines
        out, err = Path(r["out"]).read_text(), Path(r["err"]).read_text()
        runs.append(Run(r["code"], out, err))
    return runs
