"""Kueue-native steering on the API mock: Jobs gated with ``kueue.x-k8s.io/admission-gated-by`` get node
affinity, the contract and power-cap annotations, and lose only energaizer's gate name."""

from __future__ import annotations

import json
from typing import Any

import aiohttp.web
import pytest
from energaizer_operator.estimation import estimate_job
from energaizer_operator.models import AIJobSpec
from kmock_support import Fault, FaultyEmulator, RealisticEmulator
from operator_testkit import PRODUCTS, aijob, node, wait_for

from energaizer.whatif import recommend_power_cap

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)

GATE = "kueue.x-k8s.io/admission-gated-by"
JOBS_URL = "/apis/batch/v1/namespaces/default/jobs"
LABEL = "nvidia.com/gpu.product"
NODE_GPUS = {p: 8 for p in PRODUCTS.values()}  # gpu_cluster: 8 GPUs on every GPU node


def work(model: str = "llama-3.1-8b", requests: int = 4000) -> dict[str, Any]:
    return {
        "model": model,
        "inference": {"requests": requests, "inputTokens": 512, "outputTokens": 256, "batchSize": 16},
    }


def gated_job(
    name: str,
    *,
    gates: str = "energaizer.io/placer",
    workload: dict[str, Any] | str | None = None,
    gpus: int = 1,
    parallelism: int = 1,
    extra: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    annotations = {GATE: gates, **(extra or {})}
    if workload is not None:
        annotations["energaizer.io/workload"] = (
            workload if isinstance(workload, str) else json.dumps(workload)
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": annotations,
            "labels": {"kueue.x-k8s.io/queue-name": "team-a", **(labels or {})},
        },
        "spec": {
            "suspend": True,
            "parallelism": parallelism,
            "completions": parallelism,
            "template": {
                "metadata": {"annotations": {"team": "a"}},
                "spec": {
                    "restartPolicy": "Never",
                    # The user's own constraint: it must survive (ANDed with energaizer's).
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                                ]
                            }
                        }
                    },
                    "containers": [
                        {
                            "name": "main",
                            "image": "vllm/vllm-openai:v0.6.0",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ],
                },
            },
        },
    }


def estimates(workload: dict[str, Any], gpus: int, replicas: int) -> dict[str, float]:
    spec = AIJobSpec.model_validate(
        {"workload": workload, "resources": {"gpusPerReplica": gpus, "replicas": replicas}}
    )
    return {e.gpu_type: e.energy_joules for e in estimate_job(spec, sorted(PRODUCTS)) if e.feasible}


def released(c, name: str) -> bool:
    job = c.jobs().get(name)
    return job is not None and "energaizer.io/placer" not in (job["metadata"]["annotations"].get(GATE) or "")


async def test_gated_job_gets_affinity_annotations_and_only_our_gate_removed(gpu_cluster, operator_factory):
    c = gpu_cluster
    await operator_factory()
    w = work()
    await c.post(
        JOBS_URL,
        gated_job(
            "serve",
            gates="example.com/quota-check, energaizer.io/placer",
            workload=w,
            gpus=2,
            parallelism=3,
            extra={"energaizer.io/energy-slack": "0.2", "energaizer.io/max-slowdown": "0.2"},
        ),
    )
    await wait_for(lambda: released(c, "serve"), timeout=60)
    job = c.jobs()["serve"]
    ann = job["metadata"]["annotations"]
    assert ann[GATE] == "example.com/quota-check"  # the other controller's gate stays
    assert not [k for k in ann if "kopf" in k] and not job["metadata"].get("finalizers")  # no kopf state

    energy = estimates(w, 2, 3)
    best = min(energy, key=energy.get)
    allowed = sorted((t for t in energy if energy[t] <= energy[best] * 1.2), key=energy.get)
    assert ann["energaizer.io/gpu-type"] == best
    assert float(ann["energaizer.io/predicted-energy-joules"]) == pytest.approx(energy[best], rel=1e-5)
    assert float(ann["energaizer.io/predicted-duration-seconds"]) > 0
    assert ann["energaizer.io/gpu-types"].split(",") == allowed

    spec = AIJobSpec.model_validate({"workload": w, "resources": {"gpusPerReplica": 2, "replicas": 3}})
    advice = recommend_power_cap(spec.to_workload(), best, max_slowdown=0.2)
    assert float(ann["energaizer.io/recommended-power-limit-watts"]) == pytest.approx(
        advice.power_limit_watts, abs=0.5
    )
    assert float(ann["energaizer.io/predicted-energy-at-power-limit-joules"]) == pytest.approx(
        3 * advice.energy_joules, rel=1e-5
    )

    pod = job["spec"]["template"]
    assert pod["metadata"]["annotations"]["team"] == "a"
    for key in ("energaizer.io/gpu-type", "energaizer.io/recommended-power-limit-watts"):
        assert pod["metadata"]["annotations"][key] == ann[key]
    node_affinity = pod["spec"]["affinity"]["nodeAffinity"]
    (term,) = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    by_key = {e["key"]: e for e in term["matchExpressions"]}
    assert by_key["zone"]["values"] == ["a"]
    assert by_key[LABEL]["operator"] == "In"
    assert by_key[LABEL]["values"] == sorted(PRODUCTS[t] for t in allowed)
    (preferred,) = node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["weight"] == 100
    assert preferred["preference"]["matchExpressions"] == [
        {"key": LABEL, "operator": "In", "values": [PRODUCTS[best]]}
    ]
    assert job["spec"]["suspend"] is True  # admission stays Kueue's
    await wait_for(lambda: any(e.get("reason") == "Steered" for e in c.events("serve")), timeout=20)


async def test_infeasible_types_are_excluded_and_a_sole_gate_is_removed(gpu_cluster, operator_factory):
    c = gpu_cluster
    await operator_factory()
    await c.post(JOBS_URL, gated_job("big", workload=work("qwen3-32b", 500)))
    await wait_for(lambda: released(c, "big"), timeout=60)
    ann = c.jobs()["big"]["metadata"]["annotations"]
    assert GATE not in ann
    assert "l4" not in ann["energaizer.io/gpu-types"].split(",")  # 32B weights do not fit in 24 GB
    terms = c.jobs()["big"]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    values = terms["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    assert PRODUCTS["l4"] not in next(e for e in values if e["key"] == LABEL)["values"]


async def test_bad_workload_is_released_unsteered_with_a_warning(gpu_cluster, operator_factory):
    c = gpu_cluster
    await operator_factory()
    await c.post(
        JOBS_URL, gated_job("typo", workload='{"model": "llama-3.1-8b", "inference": {"requests": -1}}')
    )
    await c.post(JOBS_URL, gated_job("no-fit", workload=work("llama-3.1-405b", 10)))
    # a pod of 16 GPUs on nodes of 8: no node of any type could ever run it (it was steered anyway)
    await c.post(JOBS_URL, gated_job("too-wide", workload=work(), gpus=16))
    await c.post(JOBS_URL, gated_job("ok", workload=work()))
    for name in ("typo", "no-fit", "too-wide", "ok"):
        await wait_for(lambda n=name: released(c, n), timeout=60)
    for name, reason in (
        ("typo", "InvalidWorkload"),
        ("no-fit", "NoFeasibleGpuType"),
        ("too-wide", "NoFeasibleGpuType"),
    ):
        job = c.jobs()[name]
        assert "energaizer.io/gpu-type" not in job["metadata"]["annotations"]
        assert LABEL not in json.dumps(job["spec"]["template"]["spec"].get("affinity", {}))
        await wait_for(
            lambda n=name, r=reason: any(
                e.get("reason") == r and e.get("type") == "Warning" for e in c.events(n)
            ),
            timeout=20,
        )
    assert "energaizer.io/gpu-type" in c.jobs()["ok"]["metadata"]["annotations"]  # others unaffected
    (event,) = [e for e in c.events("too-wide") if e.get("reason") == "NoFeasibleGpuType"]
    assert "a pod asks for 16 GPUs and no h100-sxm node has more than 8" in event["message"]


async def test_jobs_not_gated_by_energaizer_are_left_alone(gpu_cluster, operator_factory):
    c = gpu_cluster
    await operator_factory()
    await c.post(JOBS_URL, gated_job("theirs", gates="example.com/other", workload=work()))
    await c.post(JOBS_URL, gated_job("marker", workload=work()))  # processed: proves the operator ran
    await wait_for(lambda: released(c, "marker"), timeout=60)
    ann = c.jobs()["theirs"]["metadata"]["annotations"]
    assert GATE in ann and "energaizer.io/gpu-type" not in ann


class GatingEmulator(RealisticEmulator):
    """A namespace-wide admission policy (docs/scheduler.md, "Adding the gate") that gates every Job
    created, the operator's own too."""

    async def _handle(self, request):
        if (
            request.resource is not None
            and request.resource.plural == "jobs"
            and request.action.name == "CREATE"
        ):
            request.data.setdefault("metadata", {}).setdefault("annotations", {})[GATE] = (
                "energaizer.io/placer"
            )
        return await super()._handle(request)


@pytest.mark.kmock(cls=GatingEmulator)
async def test_an_aijobs_job_gated_by_a_namespace_policy_is_released_as_created(
    gpu_cluster, operator_factory
):
    """The Job the placer creates for a queue-labelled AIJob is steered already. Gated by a policy for
    every Job of the namespace, it was left alone, so it kept energaizer's gate and Kueue never admitted it
    (the AIJob stayed Placed for good): it is released unchanged."""
    c = gpu_cluster
    await operator_factory()
    await c.create(aijob("queued", labels={"kueue.x-k8s.io/queue-name": "team-a"}))
    await wait_for(lambda: c.phase("queued") == "Placed", timeout=90)
    await wait_for(lambda: released(c, "queued"), timeout=60)
    job = c.jobs()["queued"]
    assert GATE not in job["metadata"]["annotations"]
    placement = c.aijob("queued")["status"]["placement"]
    assert job["metadata"]["annotations"]["energaizer.io/gpu-type"] == placement["gpuType"]
    assert job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ][0]["preference"]["matchExpressions"][0]["values"] == [PRODUCTS[placement["gpuType"]]]
    await wait_for(lambda: any(e.get("reason") == "CreatedForAIJob" for e in c.events("queued")), timeout=20)
    assert len([n for n in c.job_creates() if n == "queued"]) == 1


async def test_a_job_gated_by_us_without_a_workload_is_released_unchanged(gpu_cluster, operator_factory):
    """Gated by energaizer.io/placer (a namespace-wide policy adds the gate to every Job, CPU ones too) but
    no energaizer.io/workload: nothing to estimate, and energaizer never holds a Job it cannot place (it
    stayed gated for good)."""
    c = gpu_cluster
    await operator_factory()
    body = gated_job("unstated", workload=None)
    await c.post(JOBS_URL, body)
    await wait_for(lambda: released(c, "unstated"), timeout=60)
    job = c.jobs()["unstated"]
    assert "energaizer.io/gpu-type" not in job["metadata"]["annotations"]
    assert job["spec"]["template"] == body["spec"]["template"]  # not steered


def test_decision_units() -> None:
    from energaizer_operator.gate import _release, decide_gated_job, gate_names
    from energaizer_operator.settings import OperatorSettings

    assert gate_names(" a.io/x, energaizer.io/placer ,") == ["a.io/x", "energaizer.io/placer"]
    assert _release({GATE: "a.io/x,energaizer.io/placer"}) == {GATE: "a.io/x"}
    assert _release({GATE: "energaizer.io/placer"}) == {GATE: None}
    products = {t: [p] for t, p in PRODUCTS.items()}
    settings = OperatorSettings()
    w = work()
    energy = estimates(w, 1, 1)
    best = min(energy, key=energy.get)
    tight = decide_gated_job(
        gated_job("j", workload=w, extra={"energaizer.io/energy-slack": "0"}),
        products,
        settings,
        node_gpus=NODE_GPUS,
    )
    assert tight.patch["metadata"]["annotations"]["energaizer.io/gpu-types"] == best
    loose = decide_gated_job(
        gated_job("j", workload=w, extra={"energaizer.io/energy-slack": "10"}),
        products,
        settings,
        node_gpus=NODE_GPUS,
    )
    assert sorted(loose.patch["metadata"]["annotations"]["energaizer.io/gpu-types"].split(",")) == sorted(
        energy
    )
    bad = decide_gated_job(
        gated_job("j", workload=w, extra={"energaizer.io/energy-slack": "lots"}),
        products,
        settings,
        node_gpus=NODE_GPUS,
    )
    assert bad.warning and "energaizer.io/energy-slack" in bad.message and "spec" not in bad.patch
    none = decide_gated_job(gated_job("j", workload=w), {}, settings, node_gpus={})
    assert none.warning and none.reason == "NoFeasibleGpuType"


class RefusingEmulator(RealisticEmulator):
    """Like an admission webhook that refuses changes to the pod template of the Job named ``refused``
    (kmock's own reactions would still apply the patch: it serves writes even when intercepted)."""

    async def _handle(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        if (
            str(request.method).upper().endswith("PATCH")
            and request.url.path.endswith("/jobs/refused")
            and "spec" in data
        ):
            return aiohttp.web.json_response(
                {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422}, status=422
            )
        return await super()._handle(request)


@pytest.mark.kmock(cls=RefusingEmulator)
async def test_rejected_steering_patch_releases_the_job(gpu_cluster, operator_factory):
    """The API refuses the affinity patch: the Job is released unsteered, with a Warning Event."""
    c = gpu_cluster
    await operator_factory()
    await c.post(JOBS_URL, gated_job("refused", workload=work()))
    await c.post(JOBS_URL, gated_job("accepted", workload=work()))
    for name in ("refused", "accepted"):
        await wait_for(lambda n=name: released(c, n), timeout=90)
    job = c.jobs()["refused"]
    assert "energaizer.io/gpu-type" not in job["metadata"]["annotations"]
    assert LABEL not in json.dumps(job["spec"]["template"]["spec"].get("affinity", {}))
    assert "energaizer.io/gpu-type" in c.jobs()["accepted"]["metadata"]["annotations"]
    await wait_for(
        lambda: any(e.get("reason") == "SteeringRejected" for e in c.events("refused")), timeout=20
    )


async def test_workload_with_an_over_long_integer_is_released(gpu_cluster, operator_factory):
    """Python's json refuses integers of more than 4,300 digits with a plain ValueError (not a
    JSONDecodeError); the API server stores such an annotation. It must not crash the handler and leave
    the Job gated for good."""
    c = gpu_cluster
    await operator_factory()
    digits = '{"model": "llama-3.1-8b", "inference": {"requests": ' + "1" * 5000 + "}}"
    await c.post(JOBS_URL, gated_job("digits", workload=digits))
    await wait_for(lambda: released(c, "digits"), timeout=30)
    assert "energaizer.io/gpu-type" not in c.jobs()["digits"]["metadata"]["annotations"]
    await wait_for(lambda: any(e.get("reason") == "InvalidWorkload" for e in c.events("digits")), timeout=20)


def test_the_templates_own_gpu_product_constraints_are_narrowed_never_widened() -> None:
    """A template that requires some GPU products (nodeSelector or required affinity on the product label)
    keeps that choice: the steering affinity replaces its expressions on the label, so it must allow only
    products they allow (it allowed H100 where the user had excluded it, and with a nodeSelector on L4 it
    required A100/H100: a Job no node, and no Kueue flavor, could take)."""
    from energaizer_operator.gate import decide_gated_job
    from energaizer_operator.settings import OperatorSettings

    products = {t: [p] for t, p in PRODUCTS.items()}
    settings = OperatorSettings()
    energy = estimates(work(), 1, 1)
    assert min(energy, key=energy.get) == "h100-sxm"  # the user's exclusion below matters

    def required_products(decision) -> list[list[str]]:
        terms = decision.patch["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        return [next(e["values"] for e in t["matchExpressions"] if e["key"] == LABEL) for t in terms]

    job = gated_job("j", workload=work(), extra={"energaizer.io/energy-slack": "10"})
    (term,) = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    term["matchExpressions"].append({"key": LABEL, "operator": "NotIn", "values": [PRODUCTS["h100-sxm"]]})
    decision = decide_gated_job(job, products, settings, node_gpus=NODE_GPUS)
    assert decision.reason == "Steered"
    assert required_products(decision) == [sorted([PRODUCTS["a100-sxm4-80gb"], PRODUCTS["l4"]])]
    assert decision.patch["metadata"]["annotations"]["energaizer.io/gpu-type"] == "a100-sxm4-80gb"

    job = gated_job("j", workload=work())
    job["spec"]["template"]["spec"]["nodeSelector"] = {LABEL: PRODUCTS["l4"]}
    decision = decide_gated_job(job, products, settings, node_gpus=NODE_GPUS)
    assert decision.reason == "Steered"
    assert required_products(decision) == [[PRODUCTS["l4"]]]
    assert decision.patch["metadata"]["annotations"]["energaizer.io/gpu-types"] == "l4"

    job["spec"]["template"]["spec"]["nodeSelector"] = {LABEL: "ACME-X1000"}  # no type energaizer knows
    decision = decide_gated_job(job, products, settings, node_gpus=NODE_GPUS)
    assert decision.reason == "NoFeasibleGpuType" and "spec" not in decision.patch
    assert "admits none of the GPU products present" in decision.message


class DroppingEmulator(RealisticEmulator):
    """Like an API server that restarts: the first PATCH of the Job named ``dropped`` loses its connection
    (the client gets no HTTP status at all, not an ApiException)."""

    dropped = 0

    async def __call__(self, raw_request):
        if raw_request.method == "PATCH" and raw_request.path.endswith("/jobs/dropped") and not self.dropped:
            self.dropped += 1
            await raw_request.read()
            raw_request.transport.close()
            return aiohttp.web.Response(status=500)
        return await super().__call__(raw_request)


@pytest.mark.kmock(cls=DroppingEmulator)
async def test_a_lost_connection_is_retried_like_other_api_errors(gpu_cluster, operator_factory):
    """A patch that fails below HTTP (connection reset while the API server restarts) is retried: the
    handler died on it, and with no further event on the Job (kopf re-lists only on a new watch) the Job
    stayed gated."""
    c = gpu_cluster
    await operator_factory()
    await c.post(JOBS_URL, gated_job("dropped", workload=work()))
    await wait_for(lambda: released(c, "dropped"), timeout=30)
    assert c.k8s.dropped == 1
    assert "energaizer.io/gpu-type" in c.jobs()["dropped"]["metadata"]["annotations"]


def test_a_product_whose_nodes_are_smaller_than_a_pod_is_never_allowed() -> None:
    """A pod gets all its GPUs on one node. A type whose nodes all have fewer GPUs than a pod asks for was
    allowed (and preferred when it had the least energy): Kueue admits on quota, summed over nodes, so the
    Job was admitted on that flavor and its pods stayed Pending for good."""
    from energaizer_operator.gate import decide_gated_job
    from energaizer_operator.settings import OperatorSettings

    products = {t: [p] for t, p in PRODUCTS.items()}
    settings = OperatorSettings()
    energy = estimates(work(), 8, 1)
    assert min(energy, key=energy.get) == "a100-sxm4-80gb"  # the type with the small nodes below
    small = {**NODE_GPUS, PRODUCTS["a100-sxm4-80gb"]: 4}
    job = gated_job("j", workload=work(), gpus=8, extra={"energaizer.io/energy-slack": "10"})
    decision = decide_gated_job(job, products, settings, node_gpus=small)
    assert decision.reason == "Steered"
    annotations = decision.patch["metadata"]["annotations"]
    assert annotations["energaizer.io/gpu-type"] == "h100-sxm"
    assert "a100-sxm4-80gb" not in annotations["energaizer.io/gpu-types"].split(",")
    node_affinity = decision.patch["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    (term,) = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    required = next(e["values"] for e in term["matchExpressions"] if e["key"] == LABEL)
    assert required == sorted([PRODUCTS["h100-sxm"], PRODUCTS["l4"]])
    (a100,) = [e for e in decision.estimates if e.gpu_type == "a100-sxm4-80gb"]
    assert not a100.feasible and a100.energy_joules is None
    assert a100.reason == "a pod asks for 8 GPUs and no a100-sxm4-80gb node has more than 4"

    # no type has a node that large: released unchanged, with the reason per type
    decision = decide_gated_job(
        gated_job("j", workload=work(), gpus=16), products, settings, node_gpus=NODE_GPUS
    )
    assert decision.reason == "NoFeasibleGpuType" and decision.warning and "spec" not in decision.patch
    for t in PRODUCTS:
        assert f"a pod asks for 16 GPUs and no {t} node has more than 8" in decision.message


@pytest.mark.kmock(cls=FaultyEmulator)
async def test_a_failed_patch_answered_by_the_api_server_is_retried(gpu_cluster, operator_factory):
    """A 503 answer to the steering patch (the API server restarting) is retried through the real client
    and the Job is steered, not released unsteered. How many failures the handler outlasts, and its
    back-off, are checked without the real waits below (a 15.5 s back-off for 5 failures)."""
    c = gpu_cluster
    c.k8s.faults = [Fault(path=r"/jobs/stuck$", methods=frozenset({"PATCH"}), status=503, times=2)]
    op = await operator_factory()
    await c.post(JOBS_URL, gated_job("stuck", workload=work()))
    await wait_for(lambda: released(c, "stuck"), timeout=90)
    assert c.k8s.faults[0].hits == 2
    assert "energaizer.io/gpu-type" in c.jobs()["stuck"]["metadata"]["annotations"]
    await wait_for(lambda: any(e.get("reason") == "Steered" for e in c.events("stuck")), timeout=20)
    assert "patch failed 2 times (503); retrying" in op.log()


async def test_a_job_is_released_however_many_patches_fail(monkeypatch, caplog):
    """The handler gave up after 5 failed patches (an API server restart of about 20 s) and, with no
    further event on a gated Job, left it gated for good: it now retries until the Job is released,
    re-reading the Job each time, with the documented back-off (doubling from 0.5 s, at most 30 s) and an
    error line at the 5th failure. The handler runs in-process with the API calls replaced (the first 7
    patches fail, more than the 5 the old handler tried) and its sleeps recorded instead of waited."""
    import types

    import kopf
    from energaizer_operator import gate, kube
    from energaizer_operator.inventory import node_gpus
    from energaizer_operator.loops import DeletedObjects
    from energaizer_operator.settings import OperatorSettings

    settings = OperatorSettings()
    job = gated_job("stuck", workload=work())
    job["metadata"]["resourceVersion"] = "1"
    patches: list[dict[str, Any]] = []
    reads: list[str] = []
    slept: list[float] = []
    events: list[tuple[str, str]] = []

    def patch_job(namespace, name, body, timeout=None):
        patches.append(body)
        if len(patches) <= 7:
            raise kube.ApiException(status=503, reason="Service Unavailable")
        return {}

    def read_job(namespace, name, timeout=None):
        reads.append(name)
        return job

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(kube, "patch_job", patch_job)
    monkeypatch.setattr(kube, "read_job", read_job)
    monkeypatch.setattr(gate.asyncio, "sleep", sleep)
    monkeypatch.setattr(kopf, "event", lambda body, *, type, reason, message: events.append((type, reason)))
    nodes = [
        node_gpus(node(f"{t}-0", p, 8), product_label=LABEL, gpu_resource="nvidia.com/gpu", mapping={})
        for t, p in PRODUCTS.items()
    ]
    memo = {"state": types.SimpleNamespace(settings=settings, deleted=DeletedObjects())}
    with caplog.at_level("WARNING", logger="energaizer_operator.gate"):
        await gate.steer_gated_job(
            body=kopf.Body(job), event={"type": "ADDED", "object": job}, memo=memo, gpu_nodes={None: nodes}
        )
    assert len(patches) == 8 and len(reads) == 7
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    final = patches[-1]
    assert GATE in final["metadata"]["annotations"] and final["metadata"]["annotations"][GATE] is None
    assert "energaizer.io/gpu-type" in final["metadata"]["annotations"] and "spec" in final
    assert final == patches[0]  # the same steering each time, not a release unsteered
    assert events == [("Normal", "Steered")]
    levels = [(r.levelname, r.getMessage()) for r in caplog.records if "patch failed" in r.getMessage()]
    assert len(levels) == 7
    assert levels[4] == ("ERROR", "gated Job default/stuck: patch failed 5 times (503); retrying")
    assert all(level == "WARNING" for i, (level, _) in enumerate(levels) if i != 4)
