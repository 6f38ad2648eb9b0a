"""Unit tests of the operator's plain-Python parts: CRD, models, settings, inventory, steering, batch, RBAC."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from energaizer_operator import crd, rbac
from energaizer_operator.batch import PendingJob, TypeEstimate, build_problem, decide
from energaizer_operator.inventory import (
    NodeGPUs,
    PodGPUs,
    SteeredJob,
    compute_capacity,
    job_phase,
    node_gpus,
    normalise_product,
    pod_gpus,
    steered_job,
)
from energaizer_operator.models import AIJobSpec
from energaizer_operator.settings import OperatorSettings
from energaizer_operator.steering import build_job, check_template
from operator_testkit import aijob

from energaizer.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "manifests" / "crd" / "aijobs.energaizer.io.yaml"


# --------------------------------------------------------------------------------------------- CRD


def test_committed_crd_matches_the_models():
    assert CRD_FILE.read_text() == crd.render(), "regenerate: python -m energaizer_operator.crd > " + str(
        CRD_FILE
    )


def test_crd_is_a_valid_apiextensions_object():
    kubernetes_validate.validate(yaml.safe_load(CRD_FILE.read_text()), "1.30.0", strict=True)


def _to_jsonschema(node):
    node = copy.deepcopy(node)
    if isinstance(node, dict):
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        if node.pop("exclusiveMinimum", False) is True:
            node["exclusiveMinimum"] = node.pop("minimum")
        preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
        node = {k: _to_jsonschema(v) for k, v in node.items()}
        types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        if "object" in types and "properties" in node and not preserve:
            node["additionalProperties"] = False
    return node


def _validator():
    doc = yaml.safe_load(CRD_FILE.read_text())
    schema = _to_jsonschema(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def test_crd_schema_accepts_the_example_and_rejects_bad_specs():
    v = _validator()
    good = aijob("x", gpus=2, replicas=3, objective="energy-delay", candidateGpuTypes=["h100-sxm"])
    good["spec"]["workload"]["architecture"] = None
    assert not list(v.iter_errors(good))
    training = aijob("t")
    training["spec"]["workload"].update(
        task="training", inference=None, training={"tokens": 2e9, "sequenceLength": 4096}
    )
    assert not list(v.iter_errors(training))
    bad = aijob("y")
    bad["spec"]["workload"]["precision"] = "fp64"
    bad["spec"]["resources"]["gpusPerReplica"] = 0
    bad["spec"]["workload"]["inference"]["typo"] = 1
    messages = sorted(e.message for e in v.iter_errors(bad))
    assert len(messages) == 3, messages


def test_spec_models_accept_the_contract_example_and_build_a_workload():
    spec = AIJobSpec.model_validate(aijob("x", gpus=4, replicas=2)["spec"])
    w = spec.to_workload()
    assert w.gpu_count == 4 and w.model == "llama-3.1-8b" and w.inference.batch_size == 16
    assert spec.total_gpus == 8 and not w.inference.prompt_logits
    scoring = aijob("s")
    scoring["spec"]["workload"]["inference"].update(outputTokens=0, promptLogits=True)
    assert AIJobSpec.model_validate(scoring["spec"]).to_workload().inference.prompt_logits


def test_training_sizes_are_tokens_or_steps_not_both():
    """The contract's training sizes are ``tokens`` or ``steps`` (with globalBatchSize and sequenceLength);
    an AIJob with both was estimated from its steps, its tokens ignored."""
    from pydantic import ValidationError

    job = aijob("t")
    job["spec"]["workload"].update(
        task="training", inference=None, training={"tokens": 1.0e6, "steps": 10, "sequenceLength": 2048}
    )
    with pytest.raises(ValidationError, match="not both"):
        AIJobSpec.model_validate(job["spec"])


# ---------------------------------------------------------------------------------------- settings


def test_settings_from_env(tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("ACME-X1000: h100-sxm\n")
    s = OperatorSettings.from_env(
        {
            "ENERGAIZER_NAMESPACES": "ml, research,",
            "ENERGAIZER_BATCH_WINDOW_SECONDS": "0.5",
            "ENERGAIZER_PRODUCT_MAP": f"@{mapping}",
            "ENERGAIZER_DEFAULT_MODE": "annotate",
            "ENERGAIZER_LOG_LEVEL": "debug",
        }
    )
    assert s.namespaces == ["ml", "research"] and s.batch_window_seconds == 0.5
    assert (
        s.product_map == {"ACME-X1000": "h100-sxm"}
        and s.default_mode == "annotate"
        and s.log_level == "DEBUG"
    )
    defaults = OperatorSettings.from_env({})
    assert (defaults.metrics_port, defaults.health_port, defaults.namespaces) == (8080, 8081, [])
    assert (
        defaults.gpu_product_label == "nvidia.com/gpu.product" and defaults.gpu_resource == "nvidia.com/gpu"
    )


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ENERGAIZER_DEFAULT_MODE", "yolo"),
        ("ENERGAIZER_METRICS_PORT", "http"),
        ("ENERGAIZER_PRODUCT_MAP", "[1, 2]"),
        ("ENERGAIZER_BATCH_WINDOW_SECONDS", "-1"),
    ],
)
def test_bad_settings_name_the_variable(var, value):
    with pytest.raises(InvalidInputError, match=var):
        OperatorSettings.from_env({var: value})


@pytest.mark.parametrize("content", [None, "a: [b\n", b"\xff\xfe"])
def test_an_unreadable_product_map_file_names_the_variable(tmp_path, content):
    """``@file`` that is missing, not YAML or not UTF-8: an input error naming ENERGAIZER_PRODUCT_MAP (a
    missing file was an OSError the extender reported as its --port; bad YAML an internal error)."""
    path = tmp_path / "map.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match="ENERGAIZER_PRODUCT_MAP") as err:
        OperatorSettings.from_env({"ENERGAIZER_PRODUCT_MAP": f"@{path}"})
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "value",
    [
        '{"ACME-X1000": "h100-sxm", "ACME-X1000": "l4"}',
        "@map.yaml",
    ],
)
def test_a_product_map_that_names_a_label_twice_names_the_variable(tmp_path, monkeypatch, value):
    """A label mapped twice (inline JSON or the ``@file`` YAML) took its last value silently."""
    (tmp_path / "map.yaml").write_text("ACME-X1000: h100-sxm\nACME-X1000: l4\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="ENERGAIZER_PRODUCT_MAP") as err:
        OperatorSettings.from_env({"ENERGAIZER_PRODUCT_MAP": value})
    assert "'ACME-X1000' appears twice" in str(err.value), str(err.value)


# --------------------------------------------------------------------------------------- inventory


def _node(product, gpus="8", **spec):
    return {
        "metadata": {"name": "n", "labels": {"nvidia.com/gpu.product": product}},
        "spec": spec,
        "status": {"allocatable": {"nvidia.com/gpu": gpus}},
    }


def test_node_products_are_normalised_and_unknown_ones_reported():
    kw = {"product_label": "nvidia.com/gpu.product", "gpu_resource": "nvidia.com/gpu", "mapping": {}}
    assert node_gpus(_node("NVIDIA-H100-80GB-HBM3"), **kw).gpu_type == "h100-sxm"
    assert node_gpus(_node("NVIDIA-A100-SXM4-80GB-SHARED"), **kw).gpu_type == "a100-sxm4-80gb"
    mig = node_gpus(_node("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"), **kw)
    assert mig.gpu_type is None and "MIG" in mig.reason
    unknown = node_gpus(_node("ACME-X1000"), **kw)
    assert unknown.gpu_type is None and "ENERGAIZER_PRODUCT_MAP" in unknown.reason
    assert node_gpus(_node("ACME-X1000"), **{**kw, "mapping": {"ACME-X1000": "l4"}}).gpu_type == "l4"
    assert node_gpus(_node("NVIDIA-L4", unschedulable=True), **kw).schedulable is False
    assert node_gpus({"metadata": {"name": "cpu"}}, **kw) is None
    assert normalise_product("Tesla-T4-SHARED") == ("Tesla-T4", "")


def test_pod_gpu_use():
    pod = {
        "metadata": {},
        "spec": {
            "nodeName": "n1",
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}, {"resources": {}}],
            "initContainers": [{"resources": {"requests": {"nvidia.com/gpu": 3}}}],
        },
        "status": {"phase": "Running"},
    }
    assert pod_gpus(pod, gpu_resource="nvidia.com/gpu") == PodGPUs("n1", 3)
    assert pod_gpus({**pod, "status": {"phase": "Succeeded"}}, gpu_resource="nvidia.com/gpu") is None
    ours = {
        **pod,
        "metadata": {
            "annotations": {"energaizer.io/gpu-type": "l4"},
            "labels": {"energaizer.io/aijob": "x"},
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "uid": "job-1", "controller": True}
            ],
        },
    }
    # a pod of an AIJob's Job counts on its node too, naming its Job (whose charge leaves it out)
    assert pod_gpus(ours, gpu_resource="nvidia.com/gpu") == PodGPUs("n1", 3, job_uid="job-1")
    # A pod of a Job steered through the Kueue gate: not an AIJob's, so its GPUs count.
    gated = {**pod, "metadata": {"annotations": {"energaizer.io/gpu-type": "l4"}}}
    assert pod_gpus(gated, gpu_resource="nvidia.com/gpu") == PodGPUs("n1", 3)


def test_capacity_subtracts_pods_jobs_and_reservations():
    nodes = [
        NodeGPUs("a", "P-H", "h100-sxm", 8, True),
        NodeGPUs("b", "P-H", "h100-sxm", 4, True),
        NodeGPUs("c", "P-H", "h100-sxm", 8, False),
        NodeGPUs("d", "P-X", None, 8, True, "unknown"),
    ]
    jobs = [
        SteeredJob("ns", "j1", "u1", "h100-sxm", 3, False, "Running"),
        SteeredJob("ns", "j2", "u2", "h100-sxm", 5, True, "Succeeded"),
    ]
    cap = compute_capacity(nodes, [PodGPUs("a", 2)], jobs, {"h100-sxm": 1})
    assert cap.free == {"h100-sxm": 12 - 2 - 3 - 1}
    assert cap.largest_free_node == {"h100-sxm": 6}
    assert cap.unknown_products == {"P-X": "unknown"} and cap.products == {"h100-sxm": ["P-H"]}


def test_pods_of_a_deleted_or_finished_job_hold_their_gpus_themselves():
    """The pods of an AIJob's unfinished Job are the Job's GPUs (not counted twice); once the Job is deleted
    (by hand, ``--cascade=orphan``, pods still terminating) or finished, its live pods still hold their GPUs.
    They were never counted: the freed GPUs were handed out again while the pods ran on them."""
    nodes = [NodeGPUs("a", "P-L4", "l4", 8, True)]
    running = SteeredJob("ns", "j1", "aijob-1", "l4", 4, False, "Running", uid="job-1")
    failed = SteeredJob("ns", "j2", "aijob-2", "l4", 2, True, "Failed", uid="job-2")
    pods = [
        PodGPUs("a", 4, uid="p1", job_uid="job-1"),  # its Job counts it
        PodGPUs("a", 2, uid="p2", job_uid="job-2"),  # its Job failed: terminating, still on its GPUs
        PodGPUs("a", 1, uid="p3", job_uid="job-3"),  # its Job was deleted
    ]
    assert compute_capacity(nodes, pods, [running, failed]).free == {"l4": 8 - 4 - 2 - 1}
    assert compute_capacity(nodes, pods[:1], [running]).free == {"l4": 4}


def test_a_job_holds_its_gpus_where_its_pods_run():
    """A queue Job placed on h100 and admitted by Kueue on the a100 flavor: its bound pod counts on its
    node's type (once: not again through its Job), its unbound GPUs on the admitted flavor (the product
    Kueue wrote into the pod template's nodeSelector); a suspended Job holds nothing; a Job without a
    selected product holds its unbound GPUs on its placed type."""
    nodes = [NodeGPUs("h", "P-H", "h100-sxm", 8, True), NodeGPUs("a", "P-A", "a100-sxm4-80gb", 8, True)]
    free = {"h100-sxm": 8, "a100-sxm4-80gb": 8}
    queued = SteeredJob("ns", "q", "aij-1", "h100-sxm", 4, False, "Placed", uid="job-q", suspended=True)
    assert compute_capacity(nodes, [], [queued]).free == free
    admitted = dataclasses.replace(queued, suspended=False, selected_product="P-A")
    assert compute_capacity(nodes, [], [admitted]).free == {**free, "a100-sxm4-80gb": 4}
    pods = [PodGPUs("a", 1, uid="p0", job_uid="job-q"), PodGPUs("a", 1, uid="p1", job_uid="job-q")]
    running = dataclasses.replace(admitted, phase="Running")
    assert compute_capacity(nodes, pods, [running]).free == {**free, "a100-sxm4-80gb": 4}
    # its pods count where they are bound even if the template selected no product
    unselected = dataclasses.replace(running, selected_product=None)
    assert compute_capacity(nodes, pods, [unselected]).free == {"h100-sxm": 6, "a100-sxm4-80gb": 6}
    # preempted: suspended again, its pods still terminating on their node
    preempted = dataclasses.replace(running, suspended=True, phase="Placed")
    assert compute_capacity(nodes, pods, [preempted]).free == {**free, "a100-sxm4-80gb": 6}
    # what the Job index reads: the product the template's nodeSelector names (Kueue's admitted flavor)
    body = {
        "metadata": {"name": "q", "uid": "job-q", "annotations": {"energaizer.io/gpu-type": "h100-sxm"}},
        "spec": {"template": {"spec": {"nodeSelector": {"nvidia.com/gpu.product": "P-A", "zone": "z1"}}}},
    }
    assert steered_job(body, product_label="nvidia.com/gpu.product").selected_product == "P-A"
    assert steered_job(body, product_label="gpu.example.com/model").selected_product is None
    # a selected product of no known node: the placed type
    unknown = dataclasses.replace(admitted, selected_product="P-X")
    assert compute_capacity(nodes, [], [unknown]).free == {**free, "h100-sxm": 4}


def test_job_phase_mirroring():
    assert job_phase({}, suspended=False) == ("Placed", False)
    assert job_phase({"active": 1}, suspended=False) == ("Running", False)
    assert job_phase({"active": 1}, suspended=True) == ("Placed", False)
    assert job_phase({"conditions": [{"type": "Complete", "status": "True"}]}, False) == ("Succeeded", True)
    assert job_phase({"conditions": [{"type": "Failed", "status": "True"}]}, False) == ("Failed", True)


# ---------------------------------------------------------------------------------------- steering


def test_build_job_merges_affinity_and_sets_gpus_and_annotations():
    template = {
        "metadata": {"labels": {"kueue.x-k8s.io/queue-name": "q"}},
        "spec": {
            "containers": [{"name": "m", "image": "i", "resources": {"limits": {"cpu": "4"}}}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                }
            },
        },
    }
    job = build_job(
        name="x",
        namespace="ns",
        template=template,
        replicas=3,
        gpus_per_replica=2,
        gpu_type="h100-sxm",
        products=["NVIDIA-H100-80GB-HBM3"],
        product_label="nvidia.com/gpu.product",
        gpu_resource="nvidia.com/gpu",
        energy_joules=1234.5,
        duration_seconds=60,
    )
    pod = job["spec"]["template"]
    exprs = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"]
    assert [e["key"] for e in exprs] == ["zone", "nvidia.com/gpu.product"]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "4", "nvidia.com/gpu": "2"}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    assert job["spec"]["parallelism"] == 3 and job["metadata"]["annotations"]["energaizer.io/gpus"] == "6"
    for ann in (job["metadata"]["annotations"], pod["metadata"]["annotations"]):
        assert ann["energaizer.io/gpu-type"] == "h100-sxm"
        assert ann["energaizer.io/predicted-energy-joules"] == "1234.5"
        assert ann["energaizer.io/predicted-duration-seconds"] == "60"
    assert "affinity" in template["spec"] and "annotations" not in template["metadata"]  # input untouched


def test_steer_needs_containers():
    with pytest.raises(InvalidInputError, match=r"spec\.template\.spec\.containers"):
        check_template({})
    with pytest.raises(InvalidInputError, match=r"containers\[0\]"):
        check_template({"spec": {"containers": [{"name": "m"}]}})


# ------------------------------------------------------------------------------------------- batch


def _job(key, demand, gpr, **energies):
    est = {
        t: TypeEstimate(e, e / 100, 100.0, e > 0, "" if e > 0 else "does not fit")
        for t, e in energies.items()
    }
    return PendingJob(key, key, demand, gpr, "energy", est)


def test_batch_decision_respects_capacity_and_node_size():
    cap = compute_capacity([NodeGPUs("a", "PA", "a", 2, True), NodeGPUs("b", "PB", "b", 8, True)], [], [])
    jobs = [
        _job("j1", 1, 1, a=10.0, b=20.0),
        _job("j2", 1, 1, a=11.0, b=30.0),
        _job("j3", 1, 1, a=12.0, b=13.0),
        _job("big", 4, 4, a=1.0, b=50.0),  # a has no node with 4 free GPUs
        _job("oom", 1, 1, a=-1.0, b=-1.0),
    ]
    problem, _ = build_problem(jobs, cap)
    # a's only node has 2 GPUs: an AIJob asking for 4 per replica waits for nothing there (it was told
    # "no node has 4 free GPUs", as if it would fit once GPUs were freed)
    assert problem.infeasible_reasons[3][0] == "no a node has 4 GPUs (the largest has 2)"
    busy = compute_capacity(
        [NodeGPUs("a", "PA", "a", 8, True), NodeGPUs("b", "PB", "b", 8, True)], [PodGPUs("a", 6)], []
    )
    problem, _ = build_problem(jobs, busy)
    assert problem.infeasible_reasons[3][0] == "no node has 4 free GPUs"  # 2 of its 8 are free now
    decisions, result = decide(jobs, cap)
    got = {d.job.key: d.gpu_type for d in decisions}
    assert got == {"j1": "a", "j2": "a", "j3": "b", "big": "b", "oom": None}
    assert result.objective == pytest.approx(10 + 11 + 13 + 50)
    oom = next(d for d in decisions if d.job.key == "oom")
    assert "does not fit" in oom.reason
    j3 = next(d for d in decisions if d.job.key == "j3")
    assert j3.savings_joules == pytest.approx(0.0)  # b is its worst feasible type: no savings
    j1 = next(d for d in decisions if d.job.key == "j1")
    assert j1.savings_joules == pytest.approx(10.0)


# -------------------------------------------------------------------------------------------- RBAC


def test_required_rules_cover_every_watched_and_written_resource():
    covered = {
        (g, r, v)
        for rule in rbac.REQUIRED_RULES
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    for need in [
        ("energaizer.io", "aijobs", "watch"),
        ("energaizer.io", "aijobs", "patch"),
        ("energaizer.io", "aijobs/status", "patch"),
        ("", "nodes", "watch"),
        ("", "pods", "watch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "watch"),
        ("", "events", "create"),
        ("", "namespaces", "watch"),
    ]:
        assert need in covered, need
    assert not any("*" in x for rule in rbac.REQUIRED_RULES for key in rule for x in rule[key])


def test_a_custom_architecture_takes_camel_case_as_the_rest_of_the_spec():
    """contract section 2: the spec is camelCase. ``kvHeads`` (and ``cnn.imageSize``) mean what the catalog
    YAML's ``kv_heads`` means; the CRD lists both spellings, since the API server prunes the names it lacks;
    one field given two values is Invalid naming both."""
    from energaizer_operator.records import parse_spec

    snake = {
        "id": "x",
        "layers": 32,
        "hidden": 4096,
        "heads": 32,
        "kv_heads": 8,
        "ffn": 14336,
        "vocab": 128256,
    }
    camel = {k: v for k, v in snake.items() if k != "kv_heads"} | {"kvHeads": 8}
    specs = []
    for arch in (snake, camel):
        body = aijob("a")["spec"]
        body["workload"] = {k: v for k, v in body["workload"].items() if k != "model"} | {
            "architecture": arch
        }
        spec, error = parse_spec(body, "steer")
        assert error is None
        specs.append(spec)
    assert specs[0].to_workload() == specs[1].to_workload()
    assert specs[1].workload.architecture.kv_heads == 8
    body = aijob("b")["spec"]
    body["workload"] = {k: v for k, v in body["workload"].items() if k != "model"}
    body["workload"]["architecture"] = snake | {"kvHeads": 4}
    error = parse_spec(body, "steer")[1]
    assert error.field.startswith("spec.workload.architecture") and "kvHeads and kv_heads" in error.message
    cnn = {"id": "r", "arch_type": "cnn", "cnn": {"family": "resnet", "depth": 50, "imageSize": 384}}
    body["workload"]["architecture"] = cnn
    spec, error = parse_spec(body, "steer")
    assert error is None and spec.workload.architecture.cnn.image_size == 384
    schema = crd.aijob_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    arch = schema["properties"]["spec"]["properties"]["workload"]["properties"]["architecture"]["properties"]
    assert {"kv_heads", "kvHeads", "moe_experts", "moeExperts"} <= set(arch)
    assert arch["kvHeads"]["type"] == arch["kv_heads"]["type"] == "integer"
    assert {"image_size", "imageSize"} <= set(arch["cnn"]["properties"])


@pytest.mark.parametrize(
    ("quantity", "gpus"),
    [
        ("4", 4),
        (8, 8),
        ("4000m", 4),
        ("2k", 2000),
        ("1Ki", 1024),
        ("1e3", 1000),
        ("1.5", 1),
        ("-1", 0),
        ("inf", 0),
        ("nan", 0),
        ("1e309", 1_000_000),  # was OverflowError out of the pod/node index and the Kueue gate
        ("abc", 0),
        (None, 0),
    ],
)
def test_gpu_quantities_read_as_kubernetes_quantities(quantity, gpus) -> None:
    """resource.Quantity suffixes (k, Ki, m, exponents) are read, never a negative, infinite or crashing
    count: a quantity that is not one is 0 GPUs, a huge one clipped."""
    from energaizer_operator.inventory import parse_quantity

    assert parse_quantity(quantity) == gpus
