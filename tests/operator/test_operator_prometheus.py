"""The operator's /metrics scraped by a real Prometheus server and queried through its HTTP API."""

from __future__ import annotations

import subprocess

import pytest
from dcgm_support import prometheus_binary as find_prometheus
from dcgm_support import query
from kmock_support import RealisticEmulator
from operator_testkit import aijob, free_port, wait_for

pytestmark = [pytest.mark.kmock(cls=RealisticEmulator), pytest.mark.prometheus]


@pytest.fixture
def prometheus_binary() -> str:
    return find_prometheus()


async def test_real_prometheus_scrapes_the_operator(
    gpu_cluster, operator_factory, prometheus_binary, tmp_path
):
    c = gpu_cluster
    op = await operator_factory()
    await c.create(aijob("scraped", gpus=2))
    await wait_for(lambda: c.phase("scraped") == "Placed")
    gpu_type = c.aijob("scraped")["status"]["placement"]["gpuType"]

    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: energaizer-operator\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{op.metrics_port}']}}]\n"
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
        placed = await wait_for(
            lambda: query(base, 'energaizer_placement_info{aijob="scraped"}'), timeout=40, interval=0.5
        )
        assert placed[0]["metric"]["gpu_type"] == gpu_type and placed[0]["metric"]["namespace"] == "default"
        assert placed[0]["metric"]["job"] == "energaizer-operator"
        energy = query(base, f'energaizer_predicted_energy_joules{{aijob="scraped",gpu_type="{gpu_type}"}}')
        expected = c.aijob("scraped")["status"]["placement"]["predictedEnergyJoules"]
        assert float(energy[0]["value"][1]) == pytest.approx(expected, rel=1e-9)
        assert len(query(base, 'energaizer_predicted_duration_seconds{aijob="scraped"}')) == 3
        assert len(query(base, 'energaizer_predicted_power_watts{aijob="scraped"}')) == 3
        assert query(base, 'energaizer_predicted_savings_joules{aijob="scraped"}')
        free = await wait_for(
            lambda: query(base, f'energaizer_free_gpus{{gpu_type="{gpu_type}"}}'), timeout=60
        )
        assert float(free[0]["value"][1]) == 6.0  # 8 on the one Ready node of that type, minus 2
        counts = await wait_for(lambda: query(base, 'energaizer_aijobs{phase="Placed"}'), timeout=60)
        assert float(counts[0]["value"][1]) == 1.0
        assert float(query(base, "energaizer_estimation_seconds_count")[0]["value"][1]) >= 1
        # the decision counters: the savings counter shares its base name with the contract gauge above
        placement = c.aijob("scraped")["status"]["placement"]
        total = query(base, "energaizer_predicted_savings_joules_total")
        assert float(total[0]["value"][1]) == pytest.approx(placement["savingsJoules"], rel=1e-9)
        placed_energy = query(
            base, f'energaizer_placed_predicted_energy_joules_total{{gpu_type="{gpu_type}"}}'
        )
        assert float(placed_energy[0]["value"][1]) == pytest.approx(expected, rel=1e-9)
        assert float(query(base, "energaizer_placements_total")[0]["value"][1]) == 1.0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert await op.stop() == 0
