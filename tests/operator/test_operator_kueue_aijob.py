"""The real operator against kmock: the Job of a queue-labelled AIJob takes the admission-gate path
(required: the feasible types within the energy slack; preferred: the chosen one), so Kueue keeps its
quota and fallback; a Job without the label keeps the required affinity on one type."""

from __future__ import annotations

import json
import re

import pytest
from energaizer_operator.gate import DEFAULT_ENERGY_SLACK
from kmock_support import RealisticEmulator
from operator_testkit import PRODUCTS, aijob, metrics_when, node, wait_for

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)
LABEL = "nvidia.com/gpu.product"
NODE = {"h100-sxm": "h100-0", "a100-sxm4-80gb": "a100-0", "l4": "l4-0"}  # gpu_cluster's Ready GPU nodes


def _required(pod_spec):
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return [
        e["values"] for t in terms["nodeSelectorTerms"] for e in t["matchExpressions"] if e["key"] == LABEL
    ]


async def test_queue_labelled_aijob_gets_energy_ranked_affinity_and_follows_preemption(
    gpu_cluster, operator_factory
):
    """The Job of a queue-labelled AIJob: suspended, required affinity on the types within the energy
    slack, preferred on the chosen one. Then Kueue preempts the admitted Job (or evicts it, or its Workload
    is deleted) by suspending it again: its pods go and it waits in the queue. The AIJob stayed Running
    (condition Running True) all that time; now it goes back to Placed, and to Running when admitted
    again, with the same Job throughout."""
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("queued", labels={"kueue.x-k8s.io/queue-name": "team-a"}))
    await c.create(aijob("direct"))
    for name in ("queued", "direct"):
        await wait_for(lambda n=name: c.phase(n) == "Placed", timeout=90)
    status = c.aijob("queued")["status"]
    energy = {e["gpuType"]: e["energyJoules"] for e in status["estimates"] if e["feasible"]}
    chosen = status["placement"]["gpuType"]
    best = min(energy.values())
    allowed = sorted((t for t, e in energy.items() if e <= best * (1 + DEFAULT_ENERGY_SLACK)), key=energy.get)
    if chosen not in allowed:
        allowed.append(chosen)

    job = c.jobs()["queued"]
    assert job["spec"]["suspend"] is True  # Kueue admits it
    pod_spec = job["spec"]["template"]["spec"]
    assert _required(pod_spec) == [sorted(PRODUCTS[t] for t in allowed)]
    preferred = pod_spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [p["preference"]["matchExpressions"][0]["values"] for p in preferred] == [[PRODUCTS[chosen]]]
    assert preferred[0]["weight"] == 100
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        assert meta["annotations"]["energaizer.io/gpu-types"] == ",".join(allowed)
        assert meta["annotations"]["energaizer.io/gpu-type"] == chosen

    # without the queue label: required affinity on the chosen type only, nothing preferred
    direct = c.jobs()["direct"]["spec"]["template"]["spec"]
    assert _required(direct) == [[PRODUCTS[c.aijob("direct")["status"]["placement"]["gpuType"]]]]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in direct["affinity"]["nodeAffinity"]

    job_url = "/apis/batch/v1/namespaces/default/jobs/queued"

    async def kueue(suspend: bool, active: int) -> None:  # what Kueue and the Job controller write
        resp = await c.k8s.patch(job_url, json={"spec": {"suspend": suspend}})
        assert resp.status == 200, await resp.text()
        resp = await c.k8s.patch(f"{job_url}/status", json={"status": {"active": active}})
        assert resp.status == 200, await resp.text()

    def running_condition() -> dict:
        conditions = c.aijob("queued")["status"]["conditions"]
        return next(x for x in conditions if x["type"] == "Running")

    await kueue(suspend=False, active=1)  # admitted
    await wait_for(lambda: c.phase("queued") == "Running", timeout=60)
    await kueue(suspend=True, active=0)  # preempted: suspended again, its pod deleted
    await wait_for(lambda: c.phase("queued") == "Placed", timeout=60)
    assert running_condition()["status"] == "False" and running_condition()["reason"] == "Suspended"
    await kueue(suspend=False, active=1)  # admitted again
    await wait_for(lambda: c.phase("queued") == "Running", timeout=60)
    assert running_condition()["status"] == "True"
    assert len([n for n in c.job_creates() if n == "queued"]) == 1  # the same Job throughout


async def test_queue_labelled_aijob_allows_no_type_whose_nodes_are_too_small(cluster, operator_factory):
    """A type within the energy slack whose nodes all have fewer GPUs than a replica asks for was allowed:
    Kueue admits on quota, summed over nodes, so it could admit the Job on that flavor, where its pods
    stay Pending for good. The A100 node here has 2 GPUs, the AIJob 4 per replica (A100 has the least
    predicted energy for it, H100 is within 5 %)."""
    c = cluster
    await c.add_node(node("h100-0", PRODUCTS["h100-sxm"], 8))
    await c.add_node(node("a100-0", PRODUCTS["a100-sxm4-80gb"], 2))
    await c.add_node(node("l4-0", PRODUCTS["l4"], 8))
    await operator_factory()
    await c.create(aijob("wide", gpus=4, labels={"kueue.x-k8s.io/queue-name": "team-a"}))
    await wait_for(lambda: c.phase("wide") == "Placed", timeout=90)
    status = c.aijob("wide")["status"]
    energy = {e["gpuType"]: e["energyJoules"] for e in status["estimates"] if e["feasible"]}
    assert min(energy, key=energy.get) == "a100-sxm4-80gb"
    assert energy["h100-sxm"] <= energy["a100-sxm4-80gb"] * (1 + DEFAULT_ENERGY_SLACK)
    assert status["placement"]["gpuType"] == "h100-sxm"
    job = c.jobs()["wide"]
    (required,) = _required(job["spec"]["template"]["spec"])
    assert PRODUCTS["a100-sxm4-80gb"] not in required and PRODUCTS["h100-sxm"] in required
    assert "a100-sxm4-80gb" not in job["metadata"]["annotations"]["energaizer.io/gpu-types"].split(",")


def _free_gpus(text: str) -> dict[str, int]:
    """energaizer_free_gpus per GPU type in the operator's /metrics ``text``."""
    found = (
        re.match(r'^energaizer_free_gpus\{gpu_type="([^"]+)"\} ([0-9.]+)$', line)
        for line in text.splitlines()
    )
    return {m.group(1): int(float(m.group(2))) for m in found if m}


def _batch_of(log: str, key: str) -> dict:
    """The operator's ``placement batch {json}`` line that decided the AIJob ``key``."""
    marker = "placement batch "
    batches = (
        json.loads(line[line.index(marker) + len(marker) :])
        for line in log.splitlines()
        if marker + "{" in line
    )
    return next(b for b in batches if key in b["assignment"])


async def test_a_queue_job_holds_gpus_where_kueue_runs_it(gpu_cluster, operator_factory):
    """The free-GPU count charged a queue-labelled AIJob's Job to its placed type from its creation until
    it finished: while it waited suspended in Kueue's queue (holding no GPU anywhere) and after Kueue
    admitted it on another allowed flavor (its pod bound to a node of that type). The placed type looked
    busier than it was and the type its pod ran on freer: a later AIJob was placed on GPUs that its pod
    held (and would have stayed Pending). Now a suspended Job holds nothing, an admitted one holds its
    unbound GPUs on the flavor Kueue wrote into its nodeSelector, and a bound pod counts on its node."""
    c = gpu_cluster
    op = await operator_factory()
    await c.create(aijob("queued", labels={"kueue.x-k8s.io/queue-name": "team-a"}))
    await wait_for(lambda: c.phase("queued") == "Placed" and "queued" in c.jobs(), timeout=90)
    placed = c.aijob("queued")["status"]["placement"]["gpuType"]
    job = c.jobs()["queued"]
    assert job["spec"]["suspend"] is True
    allowed = job["metadata"]["annotations"]["energaizer.io/gpu-types"].split(",")
    other = next(t for t in allowed if t != placed)  # the flavor Kueue admits it on
    everything_free = {t: 8 for t in PRODUCTS}  # one Ready node of 8 GPUs per type
    # suspended in the queue: it holds no GPU (the old count took 1 from the placed type)
    await metrics_when(op.metrics_port, lambda t: _free_gpus(t) == everything_free, timeout=60)

    # Kueue admits it on the other flavor: it unsuspends the Job and writes the flavor's node labels into
    # its pod template; the Job controller creates the pod, kube-scheduler binds it to a node of that type
    job_url = "/apis/batch/v1/namespaces/default/jobs/queued"
    admit = {"spec": {"suspend": False, "template": {"spec": {"nodeSelector": {LABEL: PRODUCTS[other]}}}}}
    resp = await c.k8s.patch(job_url, json=admit)
    assert resp.status == 200, await resp.text()
    expected = {**everything_free, other: 7}
    await metrics_when(
        op.metrics_port, lambda t: _free_gpus(t) == expected, timeout=60
    )  # admitted, no pod yet
    pod_meta = job["spec"]["template"]["metadata"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "queued-0-x0z",
            "namespace": "default",
            "labels": {**pod_meta["labels"], "job-name": "queued"},
            "annotations": pod_meta["annotations"],
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "queued",
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": NODE[other],
            "containers": [
                {"name": "main", "image": "vllm", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
        "status": {"phase": "Running"},
    }
    await c.post("/api/v1/namespaces/default/pods", pod)
    resp = await c.k8s.patch(f"{job_url}/status", json={"status": {"active": 1}})
    assert resp.status == 200, await resp.text()
    await wait_for(lambda: c.phase("queued") == "Running", timeout=60)
    # its pod counts once, on its node's type: not again through its Job, and not on the placed type
    await metrics_when(op.metrics_port, lambda t: _free_gpus(t) == expected, timeout=60)

    # the next AIJob's placement sees that: 8 GPUs of the other type are no longer free
    await c.create(aijob("next", gpus=8, candidateGpuTypes=[other]))
    await wait_for(lambda: c.phase("next") == "Unschedulable", timeout=90)
    assert "next" not in c.jobs()
    assert _batch_of(op.log(), "default/next")["free"] == expected
