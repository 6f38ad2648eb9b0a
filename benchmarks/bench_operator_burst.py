"""A burst against the real operator process: 1,000 good + 100 malformed AIJobs at once.

    .venv/bin/python benchmarks/bench_operator_burst.py [--good 1000] [--bad 100] [--kill-after 0]

The harness of tests/operator: kmock's stateful API (``RealisticEmulator``) on localhost, the
operator as ``python -m energaizer_operator`` in a subprocess. Four GPU types with room for about
70 % of the good jobs. The mock notes when each AIJob's first ``status.estimates`` (or ``Invalid``)
write arrives; a thread polls ``/healthz`` every 100 ms. ``--kill-after N`` SIGKILLs the operator
after N status writes and restarts it (nothing may be lost). Prints p50/p95/max create ->
estimates, the time until every AIJob is terminal (Placed/Unschedulable/Invalid), the placement
batches (placed against each batch's LP bound), the API requests by method and resource with the refusals
by HTTP status (409: a write built on a stale resourceVersion), the operator's peak RSS (VmHWM) and the
slowest ``/healthz`` answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from kmock._internal import apps
from kmock._internal import parsing as _kp
from kmock._internal.k8s import KubernetesError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "operator"))

from kmock_support import RealisticEmulator, declare_resources, parse_namespaces
from operator_testkit import AIJOBS, AIJOBS_URL, Cluster, OperatorProcess, aijob, node

TYPES = {  # catalog id -> (GFD product label, nodes of 8 GPUs)
    "h100-sxm": ("NVIDIA-H100-80GB-HBM3", 29),
    "a100-sxm4-80gb": ("NVIDIA-A100-SXM4-80GB", 29),
    "l4": ("NVIDIA-L4", 30),
    "t4": ("Tesla-T4", 29),
}
TERMINAL = {"Placed", "Unschedulable", "Invalid"}


def resource_of(path: str) -> str:
    """``plural`` or ``plural/subresource`` of an API path (namespaced or cluster-wide)."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        rest = parts[parts.index("namespaces") + 2 :]
    else:
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    return "/".join(rest[:1] + rest[2:3]) or path


class TimedEmulator(RealisticEmulator):
    """Notes when each AIJob's first estimates/Invalid status and its terminal phase arrive, and counts the
    requests by method and resource and the refusals by HTTP status (a 409 is a write built on a stale
    version)."""

    estimated_at: dict[str, float]
    terminal_at: dict[str, float]
    status_writes = 0
    requests: ClassVar[Counter[str]] = Counter()
    refused: ClassVar[Counter[int]] = Counter()

    async def _handle(self, request: Any) -> Any:
        path = request.url.path
        data = request.data  # the mock turns an AIJob write into the stored object (a JSON patch)
        type(self).requests[f"{str(request.method).upper().rsplit('.', 1)[-1]} {resource_of(path)}"] += 1
        try:
            response = await super()._handle(request)
        except KubernetesError as exc:
            type(self).refused[exc.status] += 1
            raise
        if "/aijobs/" in path and path.endswith("/status") and isinstance(data, dict):
            name = path.split("/aijobs/", 1)[1].split("/", 1)[0]
            status = data.get("status") or {}
            now = time.monotonic()
            type(self).status_writes += 1
            if status.get("estimates") or status.get("phase") == "Invalid":
                self.estimated_at.setdefault(name, now)
            if status.get("phase") in TERMINAL:
                self.terminal_at[name] = now
        return response


def bodies(good: int, bad: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = [
        aijob(
            f"good-{i:04d}",
            model=rng.choice(["llama-3.1-8b", "qwen2-1.5b", "gpt2", "llama-3.1-70b"]),
            requests=rng.randint(200, 20000),
            gpus=rng.choice([1, 1, 2]),
        )
        for i in range(good)
    ]
    breaks = [  # specs the CRD schema admits (the API server refuses the others) and the operator does not
        lambda s: s["workload"].update(model="no-such-model"),
        lambda s: s["workload"].update(task="training"),
        lambda s: s["workload"].pop("model"),
        lambda s: s.update(template={}),
        lambda s: s["placement"].update(candidateGpuTypes=["tpu-v5"]),
    ]
    for i in range(bad):
        body = aijob(f"bad-{i:04d}", requests=300)
        breaks[i % len(breaks)](body["spec"])
        out.append(body)
    rng.shuffle(out)
    return out


def health_poller(port: int, stop: threading.Event, worst: list[float], failures: list[str]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30).read()
        except OSError as exc:
            failures.append(str(exc))
        worst.append(time.monotonic() - started)
        stop.wait(0.1)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(k: Any, name: str) -> str | None:
    try:
        return (k.objects[AIJOBS, "default", name].raw.get("status") or {}).get("phase")
    except KeyError:
        return None


async def main(args: argparse.Namespace) -> None:
    _kp.parse_path = parse_namespaces
    async with TimedEmulator() as k, apps.Server(k):
        k.estimated_at, k.terminal_at = {}, {}
        declare_resources(k)
        c = Cluster(k)
        await c.post(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
        )
        for gpu_type, (product, count) in TYPES.items():
            for i in range(count):
                await c.add_node(node(f"{gpu_type}-{i}", product, 8))
        tmp = Path(tempfile.mkdtemp(prefix="bench-operator-"))
        op = OperatorProcess(c, tmp, {"ENERGAIZER_BATCH_WINDOW_SECONDS": "1"})
        await op.start()
        await asyncio.sleep(2)  # let it settle (index lists) before the burst
        stop, worst, failures = threading.Event(), [], []
        poller = threading.Thread(
            target=health_poller, args=(op.health_port, stop, worst, failures), daemon=True
        )
        poller.start()

        burst = bodies(args.good, args.bad)
        names = [b["metadata"]["name"] for b in burst]
        created_at: dict[str, float] = {}
        semaphore = asyncio.Semaphore(16)

        async def create(body: dict[str, Any]) -> None:
            async with semaphore:
                await c.post(AIJOBS_URL.format(ns="default"), body)
                created_at[body["metadata"]["name"]] = time.monotonic()

        t0 = time.monotonic()
        await asyncio.gather(*(create(b) for b in burst))
        t_created = time.monotonic() - t0
        killed = False
        while not all(phase(k, n) in TERMINAL for n in names):
            if args.kill_after and not killed and TimedEmulator.status_writes >= args.kill_after:
                await op.stop(signal.SIGKILL)
                await op.start()
                killed = True
            if time.monotonic() - t0 > args.timeout:
                break
            await asyncio.sleep(0.05)
        settle = time.monotonic() - t0
        stop.set()
        poller.join()
        rss = peak_rss_mib(op.proc.pid)
        operator_cpu = cpu_seconds(op.proc.pid)
        mock_cpu = resource.getrusage(resource.RUSAGE_SELF)
        assert await op.stop() == 0

        latency = sorted(k.estimated_at[n] - created_at[n] for n in names if n in k.estimated_at)
        phases: dict[str, int] = {}
        for n in names:
            phases[str(phase(k, n))] = phases.get(str(phase(k, n)), 0) + 1
        jobs = [key for key in k.objects if key[0] == "batch/v1/jobs"]
        marker = "placement batch "
        batches = [
            json.loads(line[line.index(marker) + len(marker) :])
            for log in op.logs()
            for line in log.splitlines()
            if marker + "{" in line
        ]

        def pct(p: float) -> float:
            return latency[min(len(latency) - 1, round(p / 100 * (len(latency) - 1)))]

        print(f"AIJobs: {args.good} good + {args.bad} malformed, created in {t_created:.1f} s")
        print(
            f"GPUs: {sum(n for _, n in TYPES.values()) * 8} on {len(TYPES)} types; killed mid-burst: {killed}"
        )
        print(
            f"create -> status.estimates/Invalid: p50 {pct(50):.2f} s, p95 {pct(95):.2f} s, "
            f"max {latency[-1]:.2f} s ({len(latency)}/{len(names)} seen)"
        )
        print(f"all terminal after {settle:.1f} s from the first create; phases {phases}")
        print(f"steered Jobs: {len(jobs)} (placed {phases.get('Placed', 0)})")
        for b in batches:
            bound = b.get("lowerBound")
            gap = f", {100 * (b['objective'] / bound - 1):.2f} % above the LP bound" if bound else ""
            print(
                f"  batch {b['batch']}: {b['jobs']} jobs, backlog {b['backlog']}, placed {b['placed']}, "
                f"{b['solver']} optimal={b['optimal']}, objective {b['objective']:.4g} J{gap}"
            )
        print(
            "API requests (the burst's creates included): "
            + ", ".join(f"{k} {n}" for k, n in TimedEmulator.requests.most_common(8))
            + f"; refused: {dict(TimedEmulator.refused) or 'none'}"
        )
        print(
            f"operator peak RSS: {rss:.0f} MiB; CPU: operator {operator_cpu:.1f} s (last run), "
            f"API mock + this script {mock_cpu.ru_utime + mock_cpu.ru_stime:.1f} s"
        )
        print(
            f"/healthz: {len(worst)} polls, max {max(worst):.3f} s, p99 "
            f"{statistics.quantiles(worst, n=100)[98]:.3f} s, failures {len(failures)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=1000)
    parser.add_argument("--bad", type=int, default=100)
    parser.add_argument("--kill-after", type=int, default=0, help="SIGKILL + restart after N status writes")
    parser.add_argument("--timeout", type=float, default=300.0)
    asyncio.run(main(parser.parse_args()))
