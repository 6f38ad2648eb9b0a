"""The operator's /metrics scraped by a real Prometheus server and queried through its HTTP API."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from dcgm_support import prometheus_binary as find_prometheus
from dcgm_support import query
from kmock_support import RealisticEmulator
from operator_testkit import aijob, free_port, wait_for

pytestmark = [pytest.mark.kmock(cls=RealisticEmulator), pytest.mark.prometheus]


# The families the scraped operator has series of (the measured-energy ones need ENERGAIZER_PROMETHEUS_URL):
# contract section 4's types, and the decision counters (extensions, docs/operator.md).
CONTRACT_TYPES = {
    "energaizer_predicted_energy_joules": "gauge",
    "energaizer_predicted_duration_seconds": "gauge",
    "energaizer_predicted_power_watts": "gauge",
    "energaizer_placement_info": "gauge",
    "energaizer_predicted_savings_joules": "gauge",
    "energaizer_estimation_seconds": "histogram",
    "energaizer_aijobs": "gauge",
    "energaizer_free_gpus": "gauge",
    "energaizer_placements_total": "counter",
    "energaizer_placed_predicted_energy_joules_total": "counter",
    "energaizer_predicted_savings_joules_total": "counter",
}
JOB_LABELS = {"namespace", "aijob", "gpu_type"}
CONTRACT_LABELS = {
    "energaizer_predicted_energy_joules": JOB_LABELS,
    "energaizer_predicted_duration_seconds": JOB_LABELS,
    "energaizer_predicted_power_watts": JOB_LABELS,
    "energaizer_placement_info": JOB_LABELS,
    "energaizer_predicted_savings_joules": {"namespace", "aijob"},
    "energaizer_estimation_seconds_count": set(),
    "energaizer_aijobs": {"phase"},
    "energaizer_free_gpus": {"gpu_type"},
}


def metadata(base: str) -> dict[str, str]:
    """Prometheus' type of each energaizer family (one scrape gives them all); {} before it has any."""
    try:
        body = json.loads(urllib.request.urlopen(f"{base}/api/v1/metadata", timeout=5).read())
    except OSError:
        return {}
    return {
        name: entries[0]["type"] for name, entries in body["data"].items() if name.startswith("energaizer_")
    }


@pytest.fixture
def prometheus_binary() -> str:
    return find_prometheus()


async def test_real_prometheus_scrapes_the_operator(
    gpu_cluster, operator_factory, prometheus_binary, tmp_path
):
    c = gpu_cluster
    # Prometheus first, on the metrics port the operator will serve: it scrapes nothing for its first
    # ~5 s (it applies target updates at most every 5 s), which the operator's start and placing overlap
    port, metrics_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: energaizer-operator\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        op = await operator_factory(ENERGAIZER_METRICS_PORT=str(metrics_port))
        await c.create(aijob("scraped", gpus=2))
        await wait_for(lambda: c.phase("scraped") == "Placed")
        gpu_type = c.aijob("scraped")["status"]["placement"]["gpuType"]
        placed = await wait_for(
            lambda: query(base, 'energaizer_placement_info{aijob="scraped"}'), timeout=40, interval=0.5
        )
        assert placed[0]["metric"]["gpu_type"] == gpu_type and placed[0]["metric"]["namespace"] == "default"
        assert placed[0]["metric"]["job"] == "energaizer-operator"
        energy = query(
            base, f'energaizer_predicted_energy_joules{{aijob="scraped",gpu_type="{gpu_type}"}}', strict=True
        )
        expected = c.aijob("scraped")["status"]["placement"]["predictedEnergyJoules"]
        assert float(energy[0]["value"][1]) == pytest.approx(expected, rel=1e-9)
        assert len(query(base, 'energaizer_predicted_duration_seconds{aijob="scraped"}', strict=True)) == 3
        assert len(query(base, 'energaizer_predicted_power_watts{aijob="scraped"}', strict=True)) == 3
        assert query(base, 'energaizer_predicted_savings_joules{aijob="scraped"}', strict=True)
        free = await wait_for(
            lambda: query(base, f'energaizer_free_gpus{{gpu_type="{gpu_type}"}}'), timeout=60
        )
        assert float(free[0]["value"][1]) == 6.0  # 8 on the one Ready node of that type, minus 2
        counts = await wait_for(lambda: query(base, 'energaizer_aijobs{phase="Placed"}'), timeout=60)
        assert float(counts[0]["value"][1]) == 1.0
        assert float(query(base, "energaizer_estimation_seconds_count", strict=True)[0]["value"][1]) >= 1
        # the decision counters: the savings counter shares its base name with the contract gauge above
        placement = c.aijob("scraped")["status"]["placement"]
        total = query(base, "energaizer_predicted_savings_joules_total", strict=True)
        assert float(total[0]["value"][1]) == pytest.approx(placement["savingsJoules"], rel=1e-9)
        placed_energy = query(
            base, f'energaizer_placed_predicted_energy_joules_total{{gpu_type="{gpu_type}"}}', strict=True
        )
        assert float(placed_energy[0]["value"][1]) == pytest.approx(expected, rel=1e-9)
        assert float(query(base, "energaizer_placements_total", strict=True)[0]["value"][1]) == 1.0

        # what Prometheus records of each family (its metadata: Grafana's metric browser and query hints,
        # remote write): the contract's types and labels. Asked for OpenMetrics first, the operator
        # answered it, and the savings counter's family clashed with the contract gauge of the same base
        # name: Prometheus typed the gauge `counter`.
        types = await wait_for(lambda: metadata(base), timeout=60)
        assert {name: types.get(name) for name in CONTRACT_TYPES} == CONTRACT_TYPES
        for name, labels in CONTRACT_LABELS.items():
            series = query(base, name, strict=True)
            assert series and all(
                set(s["metric"]) - {"__name__", "job", "instance"} == labels for s in series
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert await op.stop() == 0
