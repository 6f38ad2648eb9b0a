"""Helpers for the extender tests: the real ``energaizer extender`` process, kube-scheduler-shaped
request bodies, and an HTTP client with a generous timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

PRODUCTS = {
    "h100-sxm": "NVIDIA-H100-80GB-HBM3",
    "a100-sxm4-80gb": "NVIDIA-A100-SXM4-80GB",
    "l4": "NVIDIA-L4",
}
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(name: str, product: str | None, gpus: int = 8) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if product:
        labels["nvidia.com/gpu.product"] = product
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def workload(model: str = "llama-3.1-8b", requests: int = 2000, batch_size: int = 16) -> dict[str, Any]:
    """An AIJob spec.workload (camelCase), as a user writes it into the annotation."""
    return {
        "model": model,
        "precision": "bf16",
        "task": "inference",
        "inference": {"requests": requests, "inputTokens": 512, "outputTokens": 256, "batchSize": batch_size},
    }


def pod(name: str, work: dict[str, Any] | str | None, gpus: int = 1) -> dict[str, Any]:
    annotations = {}
    if work is not None:
        annotations["energaizer.io/workload"] = work if isinstance(work, str) else json.dumps(work)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "serving", "uid": f"uid-{name}", "annotations": annotations},
        "spec": {
            "schedulerName": "energaizer-scheduler",
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.6.0",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "4"}},
                }
            ],
        },
    }


def args_with_nodes(p: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """ExtenderArgs as kube-scheduler sends them with nodeCacheCapable: false."""
    return {"Pod": p, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}


def args_with_names(p: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """ExtenderArgs with nodeCacheCapable: true."""
    return {"Pod": p, "Nodes": None, "NodeNames": names}


def request(
    port: int,
    path: str,
    body: bytes | dict | list | None = None,
    method: str | None = None,
    host: str = "127.0.0.1",
):
    """(HTTP status, decoded JSON or text), from the extender on ``host`` (an IPv6 literal bare: ``::1``)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    netloc = f"[{host}]" if ":" in host else host
    req = urllib.request.Request(
        f"http://{netloc}:{port}{path}",
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def scores(port: int, body: dict[str, Any]) -> dict[str, int]:
    status, answer = request(port, "/scheduler/prioritize", body)
    assert status == 200, answer
    return {item["Host"]: item["Score"] for item in answer}


def metric(port: int, name: str, **labels: str) -> float:
    """The value of sample ``name`` (with exactly these ``labels``) in the extender's exposition."""
    _, text = request(port, "/metrics")
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"{name}{labels or ''} not exported")


class ExtenderProcess:
    """``python -m energaizer extender`` (the installed ``energaizer extender`` command's code path)."""

    def __init__(
        self,
        tmp: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        probe_host: str = "127.0.0.1",
        prelude: str = "",
    ) -> None:
        """``args`` after ``extender``; ``--port`` is added unless they carry it (then pass ``port`` too).
        It has started once ``/healthz`` answers on ``probe_host``. ``prelude``: Python run in the process
        before the command (a test's setup, e.g. a machine without IPv6)."""
        self.port = port or free_port()
        self.log_path = tmp / f"extender-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115
        port_args = [] if "--port" in args else ["--port", str(self.port)]
        command = ["extender", *port_args, *args]
        python = ["-m", "energaizer"]
        if prelude:
            python = ["-c", f"{prelude}\nimport runpy\nrunpy.run_module('energaizer', run_name='__main__')"]
        self.proc = subprocess.Popen(
            [sys.executable, *python, *command],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if request(self.port, "/healthz", host=probe_host)[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the extender did not start:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
