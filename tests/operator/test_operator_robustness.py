"""The operator's edges: a strict API mock (as a real server), no cluster config, /healthz, null numbers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import ClassVar

import aiohttp.web
import pytest
from kmock_support import RealisticEmulator
from operator_testkit import AIJOBS_URL, aijob, wait_for

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


async def test_the_mock_rejects_nan_and_stale_resource_versions(cluster):
    url = AIJOBS_URL.format(ns="default")
    resp = await cluster.k8s.post(
        url,
        data=b'{"metadata": {"name": "nan"}, "spec": {"x": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400
    await cluster.create(aijob("rv"))
    rv = cluster.aijob("rv")["metadata"]["resourceVersion"]
    path = f"{url}/rv"
    headers = {"Content-Type": "application/merge-patch+json"}
    ok = await cluster.k8s.patch(
        path, json={"metadata": {"resourceVersion": rv, "labels": {"a": "1"}}}, headers=headers
    )
    assert ok.status == 200
    stale = await cluster.k8s.patch(
        path, json={"metadata": {"resourceVersion": rv, "labels": {"a": "2"}}}, headers=headers
    )
    assert stale.status == 409
    inf = await cluster.k8s.patch(path, data=b'{"status": {"x": Infinity}}', headers=headers)
    assert inf.status == 400
    assert cluster.aijob("rv")["metadata"]["labels"] == {"a": "1"}


@pytest.mark.parametrize(
    "command",
    [["-m", "energaizer_operator"], ["-c", "from energaizer.cli.app import main; main(['operator'])"]],
)
def test_no_cluster_config_is_one_line_and_exit_2(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "KUBECONFIG"))}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "absent"))
    proc = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "kubeconfig" in lines[0]


async def test_infeasible_types_are_null_and_healthz_answers(gpu_cluster, operator_factory):
    c = gpu_cluster
    op = await operator_factory()
    await c.create(aijob("huge", model="llama-3.1-70b", requests=100))  # fits no single L4
    await wait_for(lambda: c.phase("huge") in ("Placed", "Unschedulable"), timeout=60)
    estimates = {e["gpuType"]: e for e in c.aijob("huge")["status"]["estimates"]}
    assert not estimates["l4"]["feasible"] and estimates["l4"]["reason"]
    assert estimates["l4"]["energyJoules"] is None and estimates["l4"]["averagePowerWatts"] is None
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=10).read()
    )
    assert body == b"ok"
    with pytest.raises(urllib.error.HTTPError):
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{op.health_port}/nope", timeout=10)
    assert "NaN" not in op.log() and "inconsistencies" not in op.log()
    assert await op.stop() == 0


class JobValidatingEmulator(RealisticEmulator):
    """As a real API server: a Job whose name is not a valid label value (the Job controller labels its
    pods ``batch.kubernetes.io/job-name: <name>``) is refused with 422 Invalid."""

    refused: ClassVar[list[str]] = []  # the names refused, for the test to count

    async def _handle(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        name = (data.get("metadata") or {}).get("name") or ""
        if (
            str(request.method).upper().endswith("POST")
            and request.url.path.endswith("/jobs")
            and len(name) > 63
        ):
            JobValidatingEmulator.refused.append(name)
            message = (
                f'Job.batch "{name}" is invalid: spec.template.labels: must be no more than 63 characters'
            )
            return aiohttp.web.json_response(
                {"kind": "Status", "status": "Failure", "message": message, "reason": "Invalid", "code": 422},
                status=422,
            )
        return await super()._handle(request)


@pytest.mark.kmock(cls=JobValidatingEmulator)
async def test_a_job_the_api_refuses_fails_the_aijob_instead_of_retrying_forever(
    gpu_cluster, operator_factory
):
    """An AIJob name of 64+ characters (valid for the AIJob, not for its Job): steering cannot create the
    Job, and trying again every batch cannot help. The AIJob fails with the API's reason; others go on."""
    c = gpu_cluster
    JobValidatingEmulator.refused.clear()
    await operator_factory()
    long_name = "a" * 70
    await c.create(aijob(long_name))
    await wait_for(lambda: c.phase(long_name) == "Failed", timeout=30)
    (placed,) = [x for x in c.aijob(long_name)["status"]["conditions"] if x["type"] == "Placed"]
    assert placed["reason"] == "JobRejected" and "63 characters" in placed["message"]
    await c.create(aijob("b" * 63))
    await wait_for(lambda: c.phase("b" * 63) == "Placed", timeout=30)
    await asyncio.sleep(2)
    assert JobValidatingEmulator.refused == [long_name]
