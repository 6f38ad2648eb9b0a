"""A synthetic dcgm-exporter (one HTTP endpoint per node) and a real Prometheus server for the tests
(``prometheus_binary``, ``query`` are shared with test_operator_prometheus.py).

Each fake GPU draws ``idle_watts`` except while pods hold it (``busy_watts`` then); its
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` is the exact integral of that power in millijoules since the
last driver load (``reload`` restarts it from zero), computed from the wall clock when scraped. Pod labels
(``namespace``, ``pod``, ``container``) are on a GPU's row only while a pod holds it; a GPU held by several
pods at once (time-slicing) gets one row per pod with a ``vgpu`` label, as dcgm-exporter does with
``--kubernetes-virtual-gpus``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid as uuidlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from operator_testkit import free_port

METRIC = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"


@dataclass
class Hold:
    namespace: str
    pod: str
    start: float
    end: float
    busy_watts: float


@dataclass
class FakeGPU:
    node: str
    index: int
    model_name: str
    idle_watts: float
    booted: float
    holds: list[Hold] = field(default_factory=list)
    reloads: list[float] = field(default_factory=list)
    virtual_gpus: bool = True  # False: dcgm-exporter's default mapping, one (the last) pod per shared GPU

    @property
    def uuid(self) -> str:
        return "GPU-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{self.node}/{self.index}"))

    def energy_joules(self, a: float, b: float) -> float:
        """Exact energy drawn over [a, b] (busy power while any pod holds the GPU)."""
        if b <= a:
            return 0.0
        total = self.idle_watts * (b - a)
        busy = sorted((max(h.start, a), min(h.end, b), h.busy_watts) for h in self.holds)
        for s, e, w in busy:
            if e > s:
                total += (w - self.idle_watts) * (e - s)
        return total

    def counter_mj(self, t: float) -> float:
        since = max([self.booted, *[r for r in self.reloads if r <= t]])
        return self.energy_joules(since, t) * 1000.0

    def pods_at(self, t: float) -> list[Hold]:
        return [h for h in self.holds if h.start <= t < h.end]


class FakeExporter:
    """dcgm-exporter's text format for the GPUs of one node.

    Each sample carries the time its value was computed at (the exposition format's optional timestamp):
    Prometheus would otherwise stamp it with the start of its scrape, and on a loaded test machine the
    handler may run a good fraction of a second later, which skews a 10 s window's energy by several per
    cent whatever the operator does. (The real exporter's values are DCGM readings of its own moment too.)

    It is served from a thread of its own, not from the test's event loop (which also runs the mock API
    server and the operator's watch streams): a loop held up for seconds must not leave Prometheus
    without readings around a pod's start or end, as a real node's exporter would not."""

    def __init__(self, node: str, gpus: list[FakeGPU]) -> None:
        self.node, self.gpus = node, gpus
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None

    def render(self, t: float) -> str:
        lines = [
            f"# HELP {METRIC} Total energy consumption since boot (in mJ).",
            f"# TYPE {METRIC} counter",
        ]
        for g in self.gpus:
            base = (
                f'gpu="{g.index}",UUID="{g.uuid}",pci_bus_id="00000000:{g.index + 7:02X}:00.0",'
                f'device="nvidia{g.index}",modelName="{g.model_name}",Hostname="{g.node}",'
                'DCGM_FI_DRIVER_VERSION="550.54.15"'
            )
            value = f"{g.counter_mj(t):.0f} {int(t * 1000)}"
            holders = g.pods_at(t)
            if not g.virtual_gpus:
                holders = holders[-1:]
            if not holders:
                lines.append(f"{METRIC}{{{base}}} {value}")
            for h in holders:
                pod = f'container="main",namespace="{h.namespace}",pod="{h.pod}"'
                vgpu = f',vgpu="{holders.index(h)}"' if len(holders) > 1 else ""
                lines.append(f"{METRIC}{{{base},{pod}{vgpu}}} {value}")
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name=f"dcgm-{self.node}", daemon=True).start()

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.shutdown)
            self.server.server_close()


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.skip("the prometheus binary is absent: apt-get install -y --no-install-recommends prometheus")
    return path


class Prometheus:
    """A real Prometheus server scraping ``targets`` ({job name: ["host:port", ...]}) every second."""

    def __init__(self, tmp: Path, targets: dict[str, list[str]], port: int | None = None) -> None:
        self.tmp, self.targets = tmp, targets
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        jobs = "".join(
            f"  - job_name: {name}\n    static_configs: [{{targets: {json.dumps(addrs)}}}]\n"
            for name, addrs in self.targets.items()
        )
        config = self.tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n{jobs}"
        )
        with open(self.tmp / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.tmp / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, expr: str, *, strict: bool = False) -> list[dict]:
        return query(self.url, expr, strict=strict)


def query(base: str, expr: str, *, strict: bool = False) -> list[dict]:
    """An instant query's result; [] while Prometheus does not answer (for a poll), unless ``strict``
    (for a check: an empty result must be Prometheus's answer, not a loaded machine's timeout)."""
    url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
    try:
        with urllib.request.urlopen(url, timeout=60 if strict else 30) as response:
            body = json.loads(response.read())
    except OSError:
        if strict:
            raise
        return []
    assert body["status"] == "success", body
    return body["data"]["result"]
