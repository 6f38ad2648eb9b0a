"""The calibration profile file (a mounted ConfigMap in the chart): loaded at start, reloaded on change, and a
broken edit ignored (the last good profile stays), with the real operator against kmock."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from kmock_support import RealisticEmulator
from operator_testkit import aijob, wait_for

from energaizer.profile import DEFAULT_PROFILE_PATH

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


def energies(c, name: str) -> dict[str, float]:
    return {e["gpuType"]: e["energyJoules"] for e in c.aijob(name)["status"]["estimates"] if e["feasible"]}


async def test_profile_is_reloaded_when_its_file_changes(gpu_cluster, operator_factory, tmp_path):
    c = gpu_cluster
    base = json.loads(DEFAULT_PROFILE_PATH.read_text())
    path = (
        tmp_path / "profile.yaml"
    )  # the chart's key name; calibrate writes JSON, which YAML readers take too
    path.write_text(json.dumps({**base, "name": "site-a"}))
    op = await operator_factory(ENERGAIZER_PROFILE=str(path), ENERGAIZER_PROFILE_RELOAD_SECONDS="0.5")
    await c.create(aijob("first", mode="annotate"))
    await wait_for(lambda: c.phase("first") in ("Estimated", "Placed"), timeout=60)
    first = energies(c, "first")

    # half the DRAM bandwidth for every kernel: every GPU type's decode steps take longer (a host cost per
    # step, by contrast, hides under a slow GPU's step)
    dram = {k: base[k] / 2 for k in ("dram_efficiency", "gemm_dram_efficiency")}
    slower = {**base, "name": "site-b", **dram}
    path.write_text(json.dumps(slower))
    await wait_for(lambda: "reloaded" in op.log() and "site-b" in op.log(), timeout=60)
    await c.create(aijob("second", mode="annotate"))
    await wait_for(lambda: c.phase("second") in ("Estimated", "Placed"), timeout=60)
    second = energies(c, "second")
    assert set(second) == set(first)
    assert all(second[t] > first[t] * 1.05 for t in first)

    path.write_text("{not json")
    await wait_for(lambda: "rejected" in op.log(), timeout=60)
    await c.create(aijob("third", mode="annotate"))
    await wait_for(lambda: c.phase("third") in ("Estimated", "Placed"), timeout=60)
    assert energies(c, "third") == pytest.approx(second, rel=1e-9)  # the last good profile
    assert await op.stop() == 0


async def test_a_broken_profile_stops_the_operator_at_start(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"launch_overhead_us": -5}))
    env = {**os.environ, "ENERGAIZER_PROFILE": str(path), "KUBECONFIG": str(tmp_path / "absent")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "energaizer", "operator", env=env, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ENERGAIZER_PROFILE: launch_overhead_us:")


@pytest.mark.parametrize(
    ("flag", "variable", "named"),
    [
        # the flag's broken profile stops it, named as the flag
        ("broken", None, "--profile: launch_overhead_us:"),
        # the flag replaces the variable: a good flag over a broken variable gets as far as the credentials
        ("good", "broken", "KUBECONFIG:"),
    ],
)
async def test_the_profile_flag_replaces_the_variable(tmp_path, flag, variable, named):
    """``energaizer operator --profile`` (contract: ``--profile`` on any command): it was 'no such option'."""
    broken = tmp_path / "profile.json"
    broken.write_text(json.dumps({"launch_overhead_us": -5}))
    paths = {"broken": str(broken), "good": str(DEFAULT_PROFILE_PATH)}
    env = {k: v for k, v in os.environ.items() if k != "ENERGAIZER_PROFILE"}
    env["KUBECONFIG"] = str(tmp_path / "absent")
    if variable is not None:
        env["ENERGAIZER_PROFILE"] = paths[variable]
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "energaizer", "operator", "--profile", paths[flag]),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {named}"), lines
