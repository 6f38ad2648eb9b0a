"""The operator as the container image runs it: UID 65532 (Dockerfile USER, chart runAsUser), a user
with no /etc/passwd entry and no USER/LOGNAME in the environment, as in any pod. Python's
``getpass.getuser()`` raises for such a user; nothing on the operator's start-up path may need it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kmock_support import RealisticEmulator
from operator_testkit import PRODUCTS, Cluster, OperatorProcess, aijob, node, wait_for

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "energaizer" / "values.yaml"


def _image_uid() -> int:
    return int(yaml.safe_load(CHART_VALUES.read_text())["podSecurityContext"]["runAsUser"])


def _as_unknown_user(uid: int) -> tuple[str, ...]:
    """A command prefix that runs as ``uid`` (mapped in a user namespace), or a skip."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    wrapper = (unshare, "--user", f"--map-user={uid}", f"--map-group={uid}")
    probe = subprocess.run(
        [*wrapper, sys.executable, "-c", "import os, pwd; pwd.getpwuid(os.getuid())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "uid not found" not in probe.stderr:
        pytest.skip(f"cannot run as a UID without a passwd entry here: {probe.stderr.strip()[-300:]}")
    return wrapper


async def test_the_operator_runs_as_the_image_uid_without_a_passwd_entry(
    cluster: Cluster, tmp_path: Path
) -> None:
    wrapper = _as_unknown_user(_image_uid())
    await cluster.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    # as in a pod: no login name in the environment (the image sets HOME=/tmp)
    env: dict[str, Any] = dict.fromkeys(("USER", "LOGNAME", "LNAME", "USERNAME", "POD_ID"))
    env["HOME"] = str(tmp_path)
    op = OperatorProcess(cluster, tmp_path, env, wrapper=wrapper)
    try:
        await op.start()
        await cluster.create(aijob("as-65532", mode="annotate"))
        await wait_for(lambda: cluster.phase("as-65532") == "Placed", timeout=60)
    finally:
        if op.proc is not None and op.proc.returncode is None:
            await op.stop()
