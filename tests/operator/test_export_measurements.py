"""``energaizer export-measurements``: AIJob objects -> a measurement CSV that ``calibrate`` reads."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading

from energaizer_operator import kube
from operator_testkit import free_port, use_kube_api, write_kubeconfig

from energaizer.cli.measurements_cmd import list_aijobs, measurement_row, write_csv
from energaizer.errors import InvalidInputError
from energaizer.io.workload_csv import read_workload_csv


def aijob(name: str, phase: str = "Succeeded", measured: dict | None = None, **workload) -> dict:
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "workload": {
                "model": "llama-3.1-8b",
                "precision": "bf16",
                "task": "inference",
                "inference": {"requests": 500, "inputTokens": 256, "outputTokens": 64, "batchSize": 8},
                **workload,
            },
            "resources": {"gpusPerReplica": 2, "replicas": 3},
        },
        "status": {
            "phase": phase,
            "placement": {"gpuType": "h100-sxm", "jobName": name, "predictedEnergyJoules": 5000.0},
            **({"measured": measured} if measured is not None else {}),
        },
    }


MEASURED = {
    "energyJoules": 6000.5,
    "durationSeconds": 12.25,
    "averagePowerWatts": 489.8,
    "gpus": 6,
    "source": "dcgm",
    "gpuType": "h100-sxm",
}


def test_rows_describe_one_replica_and_keep_the_status_figures():
    row = measurement_row(aijob("a", measured=MEASURED))
    assert row is not None
    assert (row["model"], row["gpu"], row["gpu_count"], row["replicas"]) == (
        "llama-3.1-8b",
        "h100-sxm",
        "2",
        "3",
    )
    assert (row["requests"], row["input_tokens"], row["output_tokens"], row["batch_size"]) == (
        "500",
        "256",
        "64",
        "8",
    )
    assert float(row["measured_energy_joules"]) == 6000.5 / 3
    assert float(row["measured_job_energy_joules"]) == 6000.5
    assert float(row["measured_duration_seconds"]) == 12.25
    assert float(row["measured_average_power_watts"]) == 489.8 / 3
    assert row["predicted_energy_joules"] == "5000.0" and row["measured_gpus"] == "6"
    assert measurement_row(aijob("b")) is None  # not measured
    assert measurement_row(aijob("c", phase="Failed", measured=MEASURED)) is None
    assert measurement_row(aijob("c", phase="Failed", measured=MEASURED), include_failed=True) is not None


def test_a_job_kueue_ran_on_another_type_has_that_types_prediction():
    """Kueue may admit a queue-labelled AIJob's Job on another allowed flavor: the row's ``gpu`` is the type
    it ran on (``measured.gpuType``), and its prediction must be that type's, not the placed type's (a row
    mixing two GPU types)."""
    body = aijob("moved", measured={**MEASURED, "gpuType": "a100-sxm4-80gb"})
    body["status"]["estimates"] = [
        {"gpuType": "h100-sxm", "feasible": True, "energyJoules": 5000.0},
        {"gpuType": "a100-sxm4-80gb", "feasible": True, "energyJoules": 7100.0},
    ]
    row = measurement_row(body)
    assert row is not None and row["gpu"] == "a100-sxm4-80gb"
    assert row["predicted_energy_joules"] == "7100.0"
    body["status"]["estimates"] = body["status"]["estimates"][:1]  # no estimate of that type: none
    assert measurement_row(body)["predicted_energy_joules"] == ""


def test_the_csv_is_what_calibrate_reads():
    training = {
        "task": "training",
        "inference": None,
        "training": {"tokens": 1.0e6, "sequenceLength": 2048, "globalBatchSize": 64},
    }
    rows = [
        measurement_row(aijob("a", measured=MEASURED)),
        measurement_row(aijob("t", measured=MEASURED, **training)),
    ]
    buf = io.StringIO()
    assert write_csv(rows, buf) == 2
    parsed = read_workload_csv(io.StringIO(buf.getvalue()))
    assert [r.gpu for r in parsed] == ["h100-sxm", "h100-sxm"]
    assert parsed[0].workload.gpu_count == 2 and parsed[0].workload.task == "inference"
    assert parsed[1].workload.task == "training"
    assert parsed[0].measured["measured_energy_joules"] == 6000.5 / 3


def test_a_zero_measurement_is_not_exported():
    """A status written for a run the counter did not see (0 J over 0 s, by operators before that was
    refused) is no measurement: its row would make calibrate reject the whole file ("must be > 0")."""
    zero = {**MEASURED, "energyJoules": 0.0, "durationSeconds": 0.0, "averagePowerWatts": 0.0}
    rows = [
        r for b in (aijob("a", measured=MEASURED), aijob("z", measured=zero)) if (r := measurement_row(b))
    ]
    buf = io.StringIO()
    assert write_csv(rows, buf) == 1
    assert [r.extra["aijob"] for r in read_workload_csv(io.StringIO(buf.getvalue()))] == ["a"]


def test_bad_invocations_are_one_line_errors(tmp_path):
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    base = [sys.executable, "-m", "energaizer", "export-measurements", "-o", str(tmp_path / "x.csv")]
    both = subprocess.run([*base, "-n", "a", "-A"], capture_output=True, text=True, env=env, timeout=120)
    assert both.returncode == 2 and both.stderr.startswith("error: --namespace:")
    assert len(both.stderr.strip().splitlines()) == 1
    nocreds = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)
    assert nocreds.returncode == 2 and nocreds.stderr.startswith("error: KUBECONFIG:"), nocreds.stderr
    assert len(nocreds.stderr.strip().splitlines()) == 1


def test_an_unreachable_api_server_is_a_one_line_error(tmp_path):
    """A refused connection: one line naming the cluster, exit 2; not an internal error (urllib3's
    MaxRetryError is no OSError)."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}", "default")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    run = subprocess.run(
        [sys.executable, "-m", "energaizer", "export-measurements", "-o", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2 and run.stderr.startswith("error: cluster: listing AIJobs failed:"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "internal" not in run.stderr
    assert not (tmp_path / "x.csv").exists()


def test_an_api_server_that_does_not_answer_is_given_up_on(tmp_path, monkeypatch):
    """A list sent to an API server that accepts and never answers (one that died without resetting its
    connections) fails after the API timeout, sent once, as a one-line error; it waited for ever before."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                requests.append(conn.recv(65536))  # read, never answered

    threading.Thread(target=accept, daemon=True).start()
    use_kube_api(f"http://127.0.0.1:{server.getsockname()[1]}", tmp_path, monkeypatch)
    monkeypatch.setattr(kube, "_request_timeout_seconds", 1.0)
    outcome: list[BaseException] = []
    caller = threading.Thread(target=lambda: outcome.append(_raised(list_aijobs, ["ml"], False)), daemon=True)
    caller.start()
    caller.join(120)  # a bound on a test that fails: the timeout it waits for is 1 s
    server.close()
    assert not caller.is_alive(), "still waiting for the API server's answer"
    (error,) = outcome
    assert isinstance(error, InvalidInputError) and error.field == "cluster", repr(error)
    assert "timed out" in str(error) and len(requests) == 1


def _raised(call, *args) -> BaseException | None:  # type: ignore[no-untyped-def]
    try:
        call(*args)
    except Exception as exc:
        return exc
    return None


def _round_trip(body: dict):  # type: ignore[no-untyped-def]
    row = measurement_row(body)
    assert row is not None
    buf = io.StringIO()
    write_csv([row], buf)
    return read_workload_csv(io.StringIO(buf.getvalue()))[0].workload


def test_the_row_keeps_the_parallel_layout_and_code_path_the_operator_estimated():
    """Contract section 3's layout columns (tensor_parallel, expert_parallel, data_parallel) and the
    attention / execution / prompt_logits columns: without them calibrate fitted a DeepSeek-style
    expert-parallel replica's measurement as a plain tensor-parallel one."""
    from energaizer_operator.models import AIJobSpec

    layout = {
        "model": "qwen3-30b-a3b",
        "expertParallel": 2,
        "dataParallel": 2,
        "attention": "eager",
        "execution": "eager",
        "inference": {
            "requests": 50,
            "inputTokens": 256,
            "outputTokens": 0,
            "batchSize": 8,
            "promptLogits": True,
        },
    }
    body = aijob("moe", measured=MEASURED, **layout)
    expected = AIJobSpec.model_validate(body["spec"]).to_workload()
    got = _round_trip(body)
    fields = ("tensor_parallel", "expert_parallel", "data_parallel", "attention", "execution", "gpu_count")
    assert {f: getattr(got, f) for f in fields} == {f: getattr(expected, f) for f in fields}
    assert got.inference == expected.inference
    training = aijob(
        "tp",
        measured=MEASURED,
        task="training",
        inference=None,
        tensorParallel=2,
        training={"tokens": 1.0e6, "sequenceLength": 2048, "globalBatchSize": 64},
    )
    assert _round_trip(training).tensor_parallel == 2


def test_a_custom_architecture_without_arch_type_is_exported():
    """``arch_type`` is optional in an AIJob (default decoder): its architecture columns are still written,
    else the row had neither a model nor an architecture and calibrate refused the file."""
    arch = {
        "id": "my-llm",
        "layers": 32,
        "hidden": 4096,
        "heads": 32,
        "kv_heads": 8,
        "ffn": 14336,
        "vocab": 128256,
    }
    body = aijob("custom", measured=MEASURED, model=None, architecture=arch)
    del body["spec"]["workload"]["model"]
    got = _round_trip(body)
    assert got.architecture is not None
    assert (got.architecture.layers, got.architecture.kv_heads, got.architecture.arch_type) == (
        32,
        8,
        "decoder",
    )


def test_a_camel_case_architecture_is_exported_with_its_fields():
    """The spec is camelCase (contract section 2): ``kvHeads`` and ``moeExperts`` reach the row's
    ``kv_heads`` and ``moe_experts`` columns as the catalog spelling does."""
    arch = {"id": "my-moe", "layers": 24, "hidden": 2048, "heads": 16, "kvHeads": 4, "vocab": 32000}
    arch |= {"moeExperts": 8, "moeActiveExperts": 2, "moeExpertFfn": 1024}
    body = aijob("custom", measured=MEASURED, model=None, architecture=arch)
    del body["spec"]["workload"]["model"]
    got = _round_trip(body)
    assert got.architecture is not None
    assert (got.architecture.kv_heads, got.architecture.moe_experts, got.architecture.moe_expert_ffn) == (
        4,
        8,
        1024,
    )
