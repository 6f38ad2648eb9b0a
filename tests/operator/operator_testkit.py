"""Helpers for the operator tests: object builders, a poller, and a view of the kmock cluster."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

AIJOBS = "energaizer.io/v1alpha1/aijobs"
JOBS = "batch/v1/jobs"
AIJOBS_URL = "/apis/energaizer.io/v1alpha1/namespaces/{ns}/aijobs"
PRODUCTS = {"h100-sxm": "NVIDIA-H100-80GB-HBM3", "a100-sxm4-80gb": "NVIDIA-A100-SXM4-80GB", "l4": "NVIDIA-L4"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(pred: Callable[[], Any], timeout: float = 90.0, interval: float = 0.1) -> Any:
    """Poll ``pred`` (a function, or a coroutine function) until it returns a true value; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {getattr(pred, '__name__', pred)}")
        await asyncio.sleep(interval)


def _scrape_blocking(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            return response.read().decode()
    except OSError:
        return ""


async def scrape(port: int) -> str:
    """The operator's /metrics text; empty while its server is not up yet or does not answer (a loaded
    machine): poll it with :func:`metrics_when` until the text holds what is checked, and check that text.
    The request runs in a worker thread: the test's event loop, which also serves the mock API server,
    goes on answering the operator while it waits (up to 30 s)."""
    return await asyncio.to_thread(_scrape_blocking, port)


async def metrics_when(port: int, check: Callable[[str], Any], timeout: float = 90.0) -> str:
    """Scrape the operator's /metrics until ``check(text)`` is true; return that text."""

    async def scraped() -> str:
        text = await scrape(port)
        return text if text and check(text) else ""

    scraped.__name__ = f"/metrics on port {port} where {getattr(check, '__name__', check)}"
    return await wait_for(scraped, timeout=timeout)


def write_kubeconfig(path: Path, server: str, namespace: str | None = None) -> Path:
    """A kubeconfig at ``path`` for the API server at ``server`` (a dummy token; ``namespace`` the
    context's default)."""
    context = "{cluster: c, user: u" + (f", namespace: {namespace}" if namespace else "") + "}"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: dummy}}}}]
contexts: [{{name: c, context: {context}}}]
current-context: c
"""
    )
    return path


def use_kube_api(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For the rest of the test, the operator's own API client (``kube.api_client``, in this process: kube.py
    and the extender's node cache) is a new one for the API server at ``url``, through a kubeconfig (no
    in-cluster service account); ``monkeypatch`` restores the previous one after."""
    from energaizer_operator import kube

    def no_incluster() -> None:
        raise kube.kubernetes.config.ConfigException("not in a cluster")

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, "default")
    # read at import, not from KUBECONFIG at call time; the default Configuration it sets is restored after
    monkeypatch.setattr(kube.kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    configuration = kube.kubernetes.client.Configuration
    monkeypatch.setattr(configuration, "_default", getattr(configuration, "_default", None))
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    monkeypatch.setattr(kube.kubernetes.config, "load_incluster_config", no_incluster)
    monkeypatch.setattr(kube, "api_client", functools.lru_cache(maxsize=1)(kube.api_client.__wrapped__))


class SocketServer:
    """A raw TCP server on 127.0.0.1 (an ephemeral port) for tests that need a socket-level API server:
    each accepted connection is served by :meth:`serve` (``conn``, its number from 1) on its own daemon
    thread; :meth:`close` closes the listening socket and every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn, len(self.conns)), daemon=True).start()

    def serve(self, conn: socket.socket, number: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


class ClosingServer(SocketServer):
    """A real HTTP/1.1 server that answers ``answered`` requests per connection with ``body`` (JSON); the
    next request on that connection is read in full and left unanswered, the connection closed
    (``how="close"``) or reset (``how="reset"``), or answered in part: the head and half the body, then
    reset (``how="midbody"``), or never (``how="hang"``: the connection stays open until the client closes
    it). ``requests``: (connection number from 1, method) per request read."""

    def __init__(self, answered: int, how: str, body: bytes) -> None:
        self.answered = answered
        self.how = how
        self.body = body
        self.requests: list[tuple[int, str]] = []
        super().__init__()

    def serve(self, conn: socket.socket, number: int) -> None:
        body = self.body
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        buffer = b""
        with conn, contextlib.suppress(OSError):  # OSError: closed at the end of the test
            for count in range(self.answered + 1):
                method, buffer = read_request(conn, buffer)
                if not method:
                    return
                self.requests.append((number, method))
                if count < self.answered:
                    conn.sendall(head + body)
            if self.how == "hang":
                while conn.recv(65536):
                    pass
            if self.how == "midbody":
                conn.sendall(head + body[: len(body) // 2])
            if self.how in ("reset", "midbody"):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def read_request(conn: socket.socket, buffer: bytes) -> tuple[str, bytes]:
    """The method of the next HTTP request on ``conn`` (its head and body read; "" if the client closed),
    and what was read past it."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return "", b""
        buffer += data
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines[1:])
    length = next((int(v) for k, _, v in fields if k.strip().lower() == "content-length"), 0)
    while len(buffer) < length:
        data = conn.recv(65536)
        if not data:
            return "", b""
        buffer += data
    return lines[0].split(" ")[0], buffer[length:]


def filled_metrics() -> Any:
    """An operator's metrics (``energaizer_operator.metrics.Metrics``) after one AIJob was estimated,
    placed and counted on an ``l4``."""
    from energaizer_operator.metrics import Metrics

    m = Metrics()
    m.set_estimates(
        "ns",
        "a",
        [
            {
                "feasible": True,
                "gpuType": "l4",
                "energyJoules": 9.0,
                "durationSeconds": 2.0,
                "averagePowerWatts": 4.5,
            }
        ],
    )
    m.set_placement("ns", "a", "l4", 3.0)
    m.count_placement("l4", 9.0, 3.0)
    m.estimation_seconds.observe(0.01)
    m.set_inventory({"l4": 2}, ["Tesla-X"])
    return m


def node(name: str, product: str, gpus: int, *, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def aijob(
    name: str,
    *,
    requests: int = 2000,
    model: str = "llama-3.1-8b",
    gpus: int = 1,
    replicas: int = 1,
    mode: str | None = None,
    labels: dict[str, str] | None = None,
    inference: dict[str, Any] | None = None,
    **placement: Any,
) -> dict[str, Any]:
    serve = {
        "requests": requests,
        "inputTokens": 512,
        "outputTokens": 256,
        "batchSize": 16,
        **(inference or {}),
    }
    spec: dict[str, Any] = {
        "workload": {"model": model, "precision": "bf16", "task": "inference", "inference": serve},
        "resources": {"gpusPerReplica": gpus, "replicas": replicas},
        "placement": {**({"mode": mode} if mode else {}), **placement},
        "template": {
            "metadata": {"labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "vllm/vllm-openai:v0.6.0"}]},
        },
    }
    return {
        "apiVersion": "energaizer.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


class Cluster:
    """The kmock emulator plus helpers to read what the operator wrote."""

    def __init__(self, emulator: Any) -> None:
        self.k8s = emulator
        self.url = str(emulator.url).rstrip("/")

    async def post(self, path: str, body: dict[str, Any]) -> None:
        resp = await self.k8s.post(path, json=body)
        assert resp.status in (200, 201), (resp.status, await resp.text())

    async def add_node(self, body: dict[str, Any]) -> None:
        await self.post("/api/v1/nodes", body)

    async def create(self, body: dict[str, Any]) -> None:
        await self.post(AIJOBS_URL.format(ns=body["metadata"]["namespace"]), body)

    def aijob(self, name: str, ns: str = "default") -> dict[str, Any]:
        return self.k8s.objects[AIJOBS, ns, name].raw

    def phase(self, name: str, ns: str = "default") -> str | None:
        """The AIJob's phase; None when it has none or does not exist (yet)."""
        try:
            obj = self.aijob(name, ns)
        except KeyError:
            return None
        return (obj.get("status") or {}).get("phase")

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {k[2]: v.raw for k, v in self.k8s.objects.items() if k[0] == JOBS and not v.deleted}

    def job_creates(self) -> list[str]:
        """Names of Jobs POSTed (successful or not)."""
        return [
            r.name for r in list(self.k8s.journal) if r.method.endswith("POST") and r.path.endswith("/jobs")
        ]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            v.raw
            for k, v in self.k8s.objects.items()
            if k[0] == "v1/events" and (v.raw.get("involvedObject") or {}).get("name") == name
        ]

    def aijob_watches(self) -> int:
        """How many watch requests on AIJobs the mock has seen (one more per operator start)."""
        journal = getattr(self.k8s, "journal", [])
        return sum(r.params.get("watch") == "true" and r.path.endswith("/aijobs") for r in list(journal))


_instances = itertools.count()


class OperatorProcess:
    """``python -m energaizer_operator`` (the same code path as ``energaizer operator``)."""

    def __init__(
        self, cluster: Cluster, tmp: Path, env: dict[str, str | None], *, wrapper: tuple[str, ...] = ()
    ) -> None:
        """``env`` is added to this process's environment (a value of None removes the variable);
        ``wrapper`` is a command prefix the operator runs under (e.g. ``unshare`` for another user)."""
        self.cluster, self.tmp, self.extra_env, self.wrapper = cluster, tmp, env, wrapper
        # a test may choose the metrics port (ENERGAIZER_METRICS_PORT in ``env``), e.g. to have Prometheus
        # scrape it from before the operator starts
        self.metrics_port = int(env.get("ENERGAIZER_METRICS_PORT") or free_port())
        self.health_port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0
        self.name = f"operator{next(_instances)}"  # one log prefix per process

    async def start(self) -> None:
        kubeconfig = write_kubeconfig(self.tmp / "kubeconfig", self.cluster.url, "default")
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONUNBUFFERED": "1",  # every log line reaches the file before a SIGKILL
            "ENERGAIZER_METRICS_PORT": str(self.metrics_port),
            "ENERGAIZER_HEALTH_PORT": str(self.health_port),
            "ENERGAIZER_BATCH_WINDOW_SECONDS": "0.5",
            "ENERGAIZER_LEASE_DURATION_SECONDS": "6",  # a restarted process takes over within 6 s
            # a job whose best type is full takes the best free one at once, unless the test sets
            # spec.placement.maxWaitSeconds (test_operator_wait_flow.py) or this variable
            "ENERGAIZER_MAX_WAIT_SECONDS": "0",
        }
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.runs += 1
        watches = self.cluster.aijob_watches()
        log = open(self.tmp / f"{self.name}-{self.runs}.log", "wb")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            *self.wrapper,
            sys.executable,
            "-m",
            "energaizer_operator",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        proc = self.proc

        def watching() -> bool:
            # a process that died at startup fails here with its log, not after the timeout
            assert proc.returncode is None, f"the operator exited ({proc.returncode}):\n{self.log()[-3000:]}"
            return self.cluster.aijob_watches() > watches

        await wait_for(watching, timeout=60)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout=20)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def logs(self) -> list[str]:
        """One log per run (start) of the process."""
        return [(self.tmp / f"{self.name}-{i}.log").read_text() for i in range(1, self.runs + 1)]

    def log(self) -> str:
        return "\n".join(self.logs())


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# for tests of servers that listen on IPv6 too (health, metrics, the extender)
needs_ipv6 = pytest.mark.skipif(
    not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1): cannot test IPv6 clients"
)


def connection_refused(host: str, port: int) -> bool:
    """Whether nothing listens on ``host``:``port`` (a connection is refused)."""
    try:
        socket.create_connection((host, port), timeout=30).close()
    except ConnectionRefusedError:
        return True
    return False
