"""Latency of the real ``energaizer extender`` process as kube-scheduler sees it (client side, keep-alive).

    .venv/bin/python benchmarks/bench_extender.py [--nodes 100] [--requests 2000] [--workloads 20]

Starts ``python -m energaizer extender`` twice: once without a node cache, answering requests that
carry full Node objects (``nodeCacheCapable: false``), and once with its node cache listing a small
in-process stand-in of the API server's ``/api/v1/nodes`` (``nodeCacheCapable: true``, NodeNames).
Nodes look like GPU Feature Discovery labels them (four GPU types, ~60 labels each). Pods cycle over
``--workloads`` distinct annotations; each one is sent once before timing (the cache warm-up that a
real cluster gets from a Deployment's first pod), so the timed requests are the steady state.
Prints p50 / p99 / max per verb and form (the target is p99 <= 10 ms for 100 nodes) and the extender
process's CPU time per request (user + system, from /proc), which a loaded machine inflates far less
than the wall-clock percentiles.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import ClassVar

import numpy as np

PRODUCTS = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L4", "NVIDIA-L40S"]
MODELS = ["llama-3.1-8b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "gemma-2-9b", "mistral-7b-v0.3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_node(i: int) -> dict:
    product = PRODUCTS[i % len(PRODUCTS)]
    labels = {f"feature.node.kubernetes.io/cpu-cpuid.{f}": "true" for f in range(40)}
    labels |= {
        "kubernetes.io/hostname": f"gpu-{i:04d}",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81559",
        "nvidia.com/cuda.driver.major": "550",
        "topology.kubernetes.io/zone": f"zone-{i % 3}",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"gpu-{i:04d}", "labels": labels, "resourceVersion": str(i + 1)},
        "spec": {"providerID": f"aws:///us-east-1a/i-{i:017x}"},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "190", "memory": "2000Gi", "pods": "110"},
            "capacity": {"nvidia.com/gpu": "8", "cpu": "192", "memory": "2048Gi", "pods": "110"},
            "conditions": [
                {"type": t, "status": "False" if t != "Ready" else "True", "reason": "KubeletReady"}
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "images": [
                {"names": [f"registry.example/img-{k}@sha256:{k:064x}"], "sizeBytes": 10**9}
                for k in range(10)
            ],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "containerRuntimeVersion": "containerd://1.7.22"},
        },
    }


def make_pod(k: int, n_workloads: int) -> dict:
    w = k % n_workloads
    work = {
        "model": MODELS[w % len(MODELS)],
        "inference": {"requests": 1000 * (1 + w), "inputTokens": 512, "outputTokens": 256, "batchSize": 16},
    }
    return {
        "metadata": {
            "name": f"vllm-{k}",
            "namespace": "serving",
            "annotations": {"energaizer.io/workload": json.dumps(work)},
        },
        "spec": {
            "schedulerName": "energaizer-scheduler",
            "containers": [
                {"name": "vllm", "image": "vllm", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }


class FakeNodesAPI(http.server.BaseHTTPRequestHandler):
    """GET /api/v1/nodes (list, paged as the API server pages it when asked for ``limit``) and a watch that
    stays open with no events."""

    nodes: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        if "watch=" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            time.sleep(600)
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        start = int(query.get("continue", ["0"])[0])
        end = start + int(query["limit"][0]) if "limit" in query else len(self.nodes)
        metadata = {"resourceVersion": "1000"}
        if end < len(self.nodes):
            metadata["continue"] = str(end)
        body = json.dumps(
            {"apiVersion": "v1", "kind": "NodeList", "metadata": metadata, "items": self.nodes[start:end]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def start_extender(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "energaizer", "extender", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"extender did not start:\n{log.read_text()}")
        time.sleep(0.1)


def measure(port: int, bodies: list[bytes], verb: str) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = np.empty(len(bodies))
    for i, body in enumerate(bodies):
        started = time.perf_counter()
        conn.request("POST", f"/scheduler/{verb}", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        out[i] = time.perf_counter() - started
        assert resp.status == 200, resp.status
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_form(
    proc: subprocess.Popen, port: int, form: str, nodes: list[dict], n_requests: int, n_workloads: int
) -> list[str]:
    names = [n["metadata"]["name"] for n in nodes]

    def body(k: int) -> bytes:
        pod = make_pod(k, n_workloads)
        if form == "Nodes":
            return json.dumps({"Pod": pod, "Nodes": {"items": nodes}, "NodeNames": None}).encode()
        return json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()

    warm = [body(k) for k in range(n_workloads)]
    timed = [body(n_workloads + k) for k in range(n_requests)]
    rows = []
    for verb in ("prioritize", "filter"):
        measure(port, warm, verb)
        cpu_before = cpu_seconds(proc.pid)
        ms = measure(port, timed, verb) * 1000
        cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / len(timed)
        rows.append(
            f"{form:9s} {verb:10s} {len(nodes):5d} {len(timed[0]) / 1024:8.0f} KiB "
            f"p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  max {ms.max():7.2f} ms  "
            f"server CPU {cpu_ms:6.2f} ms"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--workloads", type=int, default=20)
    opts = ap.parse_args()
    nodes = [make_node(i) for i in range(opts.nodes)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_extender(["--no-node-cache"], {}, Path(tmp) / "full.log")
        try:
            rows += run_form(proc, port, "Nodes", nodes, opts.requests, opts.workloads)
        finally:
            proc.terminate()
            proc.wait()
        FakeNodesAPI.nodes = nodes
        api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeNodesAPI)
        api.daemon_threads = True
        threading.Thread(target=api.serve_forever, daemon=True).start()
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(
            f"apiVersion: v1\nkind: Config\nclusters: [{{name: b, cluster: {{server: "
            f'"http://127.0.0.1:{api.server_address[1]}"}}}}]\nusers: [{{name: u, user: {{token: x}}}}]\n'
            "contexts: [{name: b, context: {cluster: b, user: u}}]\ncurrent-context: b\n"
        )
        proc, port = start_extender([], {"KUBECONFIG": str(kubeconfig)}, Path(tmp) / "names.log")
        try:
            rows += run_form(proc, port, "NodeNames", nodes, opts.requests, opts.workloads)
        finally:
            proc.terminate()
            proc.wait()
            api.shutdown()
    print(f"{'form':9s} {'verb':10s} {'nodes':>5s} {'body':>12s}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
