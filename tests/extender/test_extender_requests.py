"""Black box: kube-scheduler-shaped requests to the real ``energaizer extender`` process (full Nodes form)."""

from __future__ import annotations

import json

import pytest
from energaizer_operator.estimation import estimate_job
from energaizer_operator.models import AIJobSpec
from extender_support import (
    PRODUCTS,
    args_with_names,
    args_with_nodes,
    metric,
    node,
    pod,
    request,
    scores,
    workload,
)
from prometheus_client.parser import text_string_to_metric_families

NODES = [
    node("h100-a", PRODUCTS["h100-sxm"]),
    node("h100-b", PRODUCTS["h100-sxm"]),
    node("a100-a", PRODUCTS["a100-sxm4-80gb"]),
    node("l4-a", PRODUCTS["l4"]),
    node("mystery", "ACME-X1000"),
    node("plain", None),
]
TYPE_OF = {"h100-a": "h100-sxm", "h100-b": "h100-sxm", "a100-a": "a100-sxm4-80gb", "l4-a": "l4"}


def energies(work: dict, gpus: int) -> dict[str, float]:
    spec = AIJobSpec.model_validate({"workload": work, "resources": {"gpusPerReplica": gpus}})
    return {
        e.gpu_type: e.energy_joules for e in estimate_job(spec, sorted(set(TYPE_OF.values()))) if e.feasible
    }


@pytest.mark.parametrize(("model", "gpus", "batch"), [("llama-3.1-8b", 1, 16), ("llama-3.1-8b", 2, 64)])
def test_scores_follow_the_estimators_energy_order(extender, model, gpus, batch) -> None:
    work = workload(model, batch_size=batch)
    got = scores(extender.port, args_with_nodes(pod("chat", work, gpus), NODES))
    assert set(got) == {n["metadata"]["name"] for n in NODES}
    assert all(0 <= s <= 10 for s in got.values())
    energy = energies(work, gpus)
    best = min(energy, key=energy.get)
    for name, gpu_type in TYPE_OF.items():
        assert (got[name] == 10) == (gpu_type == best), (got, energy)
    by_type = {t: got[n] for n, t in TYPE_OF.items()}
    ranked = sorted(energy, key=energy.get)
    assert [by_type[t] for t in ranked] == sorted((by_type[t] for t in ranked), reverse=True)
    for gpu_type in ranked[1:]:  # proportional: a type needing k times the energy scores about 10 / k
        assert by_type[gpu_type] == min(9, round(10 * energy[best] / energy[gpu_type]))
    assert got["h100-a"] == got["h100-b"]
    assert got["mystery"] == 0 and got["plain"] == 0  # unknown GPU type: no preference for it


def test_filter_removes_types_that_cannot_run_it_with_the_reason(extender) -> None:
    work = workload("qwen3-32b", requests=500, batch_size=8)
    status, answer = request(extender.port, "/scheduler/filter", args_with_nodes(pod("big", work), NODES))
    assert status == 200 and answer["Error"] == ""
    kept = [n["metadata"]["name"] for n in answer["Nodes"]["items"]]
    assert kept == ["h100-a", "h100-b", "a100-a", "mystery", "plain"]
    assert set(answer["FailedNodes"]) == {"l4-a"}
    assert "does not fit" in answer["FailedNodes"]["l4-a"] and "l4" in answer["FailedNodes"]["l4-a"]
    assert answer["FailedAndUnresolvableNodes"] == answer["FailedNodes"]  # preemption cannot fix it
    got = scores(extender.port, args_with_nodes(pod("big", work), NODES))
    assert got["l4-a"] == 0 and max(got.values()) == 10


def test_filter_removes_types_that_cannot_be_set_to_the_what_if_limit(extender) -> None:
    """A 500 W power limit: the L4 (40-72 W) and the A100 SXM4 (100-400 W) cannot be set to it, the H100s
    can; the pod goes on (no Error), the other types filtered with their range."""
    work = workload("llama-3.1-8b", batch_size=16) | {"powerLimitW": 500}
    status, answer = request(extender.port, "/scheduler/filter", args_with_nodes(pod("capped", work), NODES))
    assert status == 200 and answer["Error"] == ""
    assert [n["metadata"]["name"] for n in answer["Nodes"]["items"]] == [
        "h100-a",
        "h100-b",
        "mystery",
        "plain",
    ]
    assert set(answer["FailedNodes"]) == {"a100-a", "l4-a"}
    assert "power-limit range 40-72 W" in answer["FailedNodes"]["l4-a"]


def test_pod_without_the_annotation_is_neutral(extender) -> None:
    for p in (pod("plain", None), pod("no-gpu", workload(), gpus=0)):
        got = scores(extender.port, args_with_nodes(p, NODES))
        assert len(set(got.values())) == 1
        status, answer = request(extender.port, "/scheduler/filter", args_with_nodes(p, NODES))
        assert status == 200 and answer["FailedNodes"] == {} and answer["Error"] == ""
        assert len(answer["Nodes"]["items"]) == len(NODES)


def test_node_names_without_a_node_cache_are_neutral(extender) -> None:
    """The nodeCacheCapable mismatch (kube-scheduler sends names, the extender runs without its cache):
    neutral answers, and a warning in the log saying why no pod is steered, once."""
    body = args_with_names(pod("chat", workload()), ["h100-a", "l4-a"])
    assert scores(extender.port, body) == {"h100-a": 0, "l4-a": 0}
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 200 and answer["NodeNames"] == ["h100-a", "l4-a"] and answer["FailedNodes"] == {}
    assert extender.log().count("no node cache (--no-node-cache)") == 1


def test_a_seen_workload_never_runs_the_estimator_again(extender) -> None:
    work = workload("qwen3-14b", requests=777)
    scores(extender.port, args_with_nodes(pod("first", work), NODES))
    runs = metric(extender.port, "energaizer_extender_estimator_runs_total")
    # The same work from other pods, spelled differently (key order, defaults written out), both verbs.
    respelled = json.dumps({**dict(reversed(list(work.items()))), "architecture": None})
    for i in range(5):
        scores(extender.port, args_with_nodes(pod(f"replica-{i}", respelled), NODES[::-1]))
        request(extender.port, "/scheduler/filter", args_with_nodes(pod(f"replica-{i}", work), NODES))
    assert metric(extender.port, "energaizer_extender_estimator_runs_total") == runs
    assert metric(extender.port, "energaizer_extender_cached_verdicts") >= 3


def test_metrics_that_only_go_up_are_counters(extender) -> None:
    """The exposed type of each metric: a count since start is a counter, its sample named ``_total``
    (``rate()`` and ``increase()`` handle a restart's reset only on a counter); a level is a gauge."""
    scores(extender.port, args_with_nodes(pod("typed", workload("qwen3-8b", requests=4321)), NODES))
    _, text = request(extender.port, "/metrics")
    # prometheus_client's text format also gives each counter and histogram a "_created" gauge (a timestamp)
    families = {f.name: f for f in text_string_to_metric_families(text) if not f.name.endswith("_created")}
    assert {name: f.type for name, f in families.items()} == {
        "energaizer_extender_estimator_runs": "counter",
        "energaizer_extender_requests": "counter",
        "energaizer_extender_cached_verdicts": "gauge",
        "energaizer_extender_request_seconds": "histogram",
    }
    assert all(s.name.endswith("_total") for s in families["energaizer_extender_estimator_runs"].samples)
    assert metric(extender.port, "energaizer_extender_estimator_runs_total") >= 1


BAD_BODIES = [
    b"",
    b"not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    b'{"Nodes": {"items": []}}',
    b'{"Pod": "x", "NodeNames": []}',
    b'{"Pod": {}, "Nodes": {"items": "x"}}',
    b'{"Pod": {}, "Nodes": {"items": [{"metadata": {}}]}}',
    b'{"Pod": {}, "Nodes": [1, 2]}',
    b'{"Pod": {}, "NodeNames": [1, 2]}',
    b'{"Pod": {}}',
    b'{"Pod": {"metadata": "x"}, "NodeNames": []}',
    b'{"Pod": {"metadata": {"annotations": ["a"]}}, "NodeNames": []}',
    b'{"Pod": {"spec": {"containers": "abc"}}, "NodeNames": ["a"]}',
    b'{"Pod": {"spec": {"containers": [{"resources": {"limits": [1]}}]}}, "NodeNames": ["a"]}',
    b'{"Pod": {}, "Nodes": {"items": [{"metadata": {"name": "a", "labels": [1]}}]}}',
    b'{"Pod": {}, "Nodes": {"items": [null]}}',
    b'{"Pod": {}, "Nodes": {"items": [{"metadata": {"name": "a", "labels": {"nvidia.com/gpu.product": 5}}}]}}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("verb", ["prioritize", "filter"])
def test_bad_bodies_get_4xx_and_the_server_survives(extender, verb) -> None:
    for body in BAD_BODIES:
        status, answer = request(extender.port, f"/scheduler/{verb}", body)
        assert 400 <= status < 500, (body[:40], status, answer)
        assert isinstance(answer, dict) and answer["Error"], (body[:40], answer)
    status, _ = request(extender.port, f"/scheduler/{verb}", method="GET")
    assert status == 405
    assert request(extender.port, "/healthz")[0] == 200 and extender.alive()


def test_a_body_too_large_to_decode_in_the_memory_limit_is_refused(extender) -> None:
    """Decoding JSON takes ~6x its size in memory: a body past 48 MiB (63 MiB peaked at 450 MB, the chart's
    limit is 512 Mi) gets 413 with an Error, not the process killed for memory."""
    limit = 48 * 2**20
    body = args_with_names(pod("p", workload()), ["n0"])
    body["padding"] = "x" * (limit + 1)
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 413 and "nodeCacheCapable" in answer["Error"]
    body["padding"] = "x" * (limit - 1000)
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 200 and answer["NodeNames"] == ["n0"]
    assert extender.alive()


@pytest.mark.parametrize(
    ("annotation", "gpus"),
    [
        ("{not json", 1),
        ("[1]", 1),
        (json.dumps({"model": "no-such-model", "inference": {"requests": 1}}), 1),
        (json.dumps({**workload(), "inference": {"requests": -5}}), 1),
        (json.dumps({"model": "llama-3.1-8b", "task": "training"}), 1),
        # layouts that only the pod's GPU count makes wrong: data or tensor parallelism that does not divide
        # them, and engines whose share of the GPUs (6 / 2 = 3) does not divide LLaMA-13B's 40 heads
        (json.dumps({**workload(), "dataParallel": 2}), 1),
        (json.dumps({**workload(), "tensorParallel": 4}), 2),
        (json.dumps({**workload(), "model": "llama-1-13b", "dataParallel": 2}), 6),
        # more GPUs in one pod than an AIJob's gpusPerReplica takes: the pod's bad input, not an HTTP 500
        (json.dumps(workload()), 100_000),
    ],
)
def test_malformed_annotation_is_an_error_not_a_crash(extender, annotation, gpus) -> None:
    body = args_with_nodes(pod("bad", annotation, gpus), NODES)
    status, answer = request(extender.port, "/scheduler/filter", body)
    assert status == 200 and answer["Error"].startswith("energaizer.io/workload")
    assert len(answer["Nodes"]["items"]) == len(NODES)  # nothing filtered on a guess
    status, answer = request(extender.port, "/scheduler/prioritize", body)
    assert status == 422 and answer["Error"].startswith("energaizer.io/workload")
    assert extender.alive()
    # counted as the pod's bad input, not as a good answer or a bad request
    for verb in ("filter", "prioritize"):
        assert (
            metric(extender.port, "energaizer_extender_requests_total", verb=verb, outcome="invalid_workload")
            >= 1
        )


def test_port_in_use_is_one_line_error_and_sigterm_stops_cleanly(extender, tmp_path) -> None:
    import subprocess
    import sys

    from extender_support import ExtenderProcess

    r = subprocess.run(
        [sys.executable, "-m", "energaizer", "extender", "--port", str(extender.port), "--no-node-cache"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("error: --port") and "in use" in r.stderr
    other = ExtenderProcess(tmp_path, "--no-node-cache")
    assert other.stop() == 0
