"""The real-cluster test runs only when asked for: ``KUBECONFIG`` alone (a developer's, possibly for
production) must not make ``pytest tests/`` replace the CRD and write an AIJob there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from operator_testkit import write_kubeconfig

REPO = Path(__file__).resolve().parents[2]
E2E = "tests/e2e/test_operator_real_cluster.py"


def _closed_port() -> int:
    """A localhost port nothing listens on (bound, then released): connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outcome(tmp_path: Path, **env: str) -> str:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{_closed_port()}")
    run_env = {k: v for k, v in os.environ.items() if k not in ("ENERGAIZER_E2E", "KUBECONFIG")}
    run_env.update(KUBECONFIG=str(kubeconfig), **env)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", E2E],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = proc.stdout.strip().splitlines()[-1]
    for outcome in ("failed", "passed", "skipped"):
        if f"1 {outcome}" in summary:
            return outcome
    pytest.fail(f"unexpected pytest result: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


@pytest.mark.parametrize("opt_in", [None, "true"])
def test_kubeconfig_alone_does_not_run_it(tmp_path: Path, opt_in: str | None) -> None:
    env = {} if opt_in is None else {"ENERGAIZER_E2E": opt_in}
    assert _outcome(tmp_path, **env) == "skipped"


def test_the_opt_in_runs_it(tmp_path: Path) -> None:
    """With ``ENERGAIZER_E2E=1`` it runs, and fails with one line: the kubeconfig's cluster is not there."""
    assert _outcome(tmp_path, ENERGAIZER_E2E="1") == "failed"
