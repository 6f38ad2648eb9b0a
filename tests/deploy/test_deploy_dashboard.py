"""The Grafana dashboard: generated, contract metric names only, and every query runs on a real
Prometheus that scrapes the operator's own metrics registry (energaizer_operator.metrics)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DASHBOARD_JSON
from energaizer_operator.metrics import Metrics
from prometheus_client import generate_latest

# Contract section 4: metric name -> type.
CONTRACT = {
    "energaizer_predicted_energy_joules": "gauge",
    "energaizer_predicted_duration_seconds": "gauge",
    "energaizer_predicted_power_watts": "gauge",
    "energaizer_placement_info": "gauge",
    "energaizer_predicted_savings_joules": "gauge",
    "energaizer_estimation_seconds": "histogram",
    "energaizer_aijobs": "gauge",
    "energaizer_free_gpus": "gauge",
    "energaizer_measured_energy_joules": "gauge",
    "energaizer_prediction_error_ratio": "histogram",
}
# Issue 17: counters of every placement decision (the leader counts them when it decides; the
# dashboard graphs them with increase()).
DECISION_COUNTERS = {
    "energaizer_placed_predicted_energy_joules_total": "counter",
    "energaizer_predicted_savings_joules_total": "counter",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
# What Grafana substitutes for the dashboard's variables: the namespace variable's "All" value, and
# a rate window of at least four scrape intervals (the test scrapes every second).
GRAFANA_VARIABLES = {"$namespace": ".*", "$__rate_interval": "15s", "$__range": "1h"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text())


def targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in dashboard["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects, histogram suffixes folded into the family name."""
    names = set()
    for name in re.findall(r"\benergaizer_[a-z_]+\b", expr):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in CONTRACT:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def grafana_expand(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unhandled Grafana variable in {expr!r}"
    return expr


def test_committed_json_is_the_generator_output(dashboard_generator) -> None:
    assert DASHBOARD_JSON.read_text() == dashboard_generator.render(), "run python dashboards/generate.py"


def test_queries_use_only_contract_metrics_and_cover_them_all(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for title, target in targets(dashboard):
        names = metric_names(target["expr"])
        assert names, f"{title}: no energaizer metric in {target['expr']!r}"
        known = CONTRACT.keys() | DECISION_COUNTERS.keys()
        assert names <= known, f"{title}: unknown metrics {names - known}"
        used |= names
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "namespace")
    used |= metric_names(variable["definition"])
    assert used == CONTRACT.keys() | DECISION_COUNTERS.keys()
    for name in DECISION_COUNTERS:
        uses = re.findall(rf"\w*\(?{name}\[", json.dumps(dashboard))
        assert uses and all(u.startswith("increase(") for u in uses), f"{name} is graphed with increase()"
    histogram_uses = re.findall(
        r"energaizer_(?:estimation_seconds|prediction_error_ratio)\w*", json.dumps(dashboard)
    )
    assert all(u.endswith(HISTOGRAM_SUFFIXES) for u in histogram_uses), "a histogram is queried by its family"


def test_issue_panels_are_present(dashboard: dict[str, Any]) -> None:
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "Predicted energy by namespace",
        "Predicted energy by GPU type",
        "Placements by GPU type",
        "Predicted savings by namespace",
        "Free GPUs per type",
        "Estimation latency",
        "AIJobs by phase",
    } <= titles


def test_dashboard_model_is_well_formed(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(refs)
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert dashboard["uid"] == "energaizer-operator" and dashboard["schemaVersion"] >= 36


# --- live: the operator's registry, scraped by a real Prometheus -----------------------------------

PROMETHEUS = shutil.which("prometheus")
live = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the prometheus binary is absent: apt-get install -y --no-install-recommends prometheus",
)

# (namespace, aijob) -> placed GPU type, and predicted joules per feasible type.
JOBS = {
    ("ml", "llama-8b-serving"): ("l40s", {"l40s": 4.0e6, "h100-sxm": 5.5e6, "a100-sxm4-80gb": 6.0e6}),
    ("ml", "llama-8b-finetune"): ("h100-sxm", {"h100-sxm": 9.0e8, "a100-sxm4-80gb": 1.3e9}),
    ("research", "mistral-summaries"): ("h100-sxm", {"h100-sxm": 2.0e6, "l4": 3.5e6}),
}

# Measured (dcgm) joules of two of them: ratios 1.2 (l40s) and 0.8 (h100-sxm).
MEASURED = {("ml", "llama-8b-serving"): 4.8e6, ("research", "mistral-summaries"): 1.6e6}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=60) as response:  # a check, not a poll: a loaded machine
        return json.loads(response.read())


def _poll(
    check: Callable[[], Any], timeout: float, what: str, tick: Callable[[], None] = lambda: None
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        tick()
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _mirror(m: Metrics) -> Metrics:
    """The gauges every replica sets from its indices (the AIJobs' status, the nodes)."""
    for (namespace, name), (placed, energy) in JOBS.items():
        m.set_estimates(
            namespace,
            name,
            [
                {
                    "gpuType": t,
                    "energyJoules": e,
                    "durationSeconds": e / 3000.0,
                    "averagePowerWatts": 3000.0,
                    "feasible": True,
                }
                for t, e in energy.items()
            ]
            + [
                {
                    "gpuType": "t4",
                    "energyJoules": 0.0,
                    "durationSeconds": 0.0,
                    "averagePowerWatts": 0.0,
                    "feasible": False,
                }
            ],
        )
        m.set_placement(namespace, name, placed, max(energy.values()) - energy[placed])
    for (namespace, name), joules in MEASURED.items():
        m.set_measured(namespace, name, JOBS[(namespace, name)][0], joules)
    m.set_phase_counts({"Placed": 2, "Running": 1})
    m.set_inventory({"h100-sxm": 6, "l40s": 2, "a100-sxm4-80gb": 0}, [])
    return m


@pytest.fixture(scope="module")
def metrics() -> Iterator[tuple[Metrics, int]]:
    """The leader's metrics, filled through its public API as its handlers do: the mirrored gauges, and
    the counters and histograms of what it decided and measured."""
    m = _mirror(Metrics())
    for placed, energy in JOBS.values():
        m.count_placement(placed, energy[placed], max(energy.values()) - energy[placed])
    for job, joules in MEASURED.items():
        placed, energy = JOBS[job]
        m.prediction_error_ratio.labels(gpu_type=placed).observe(joules / energy[placed])
    port = _free_port()
    server = m.serve(port, addr="127.0.0.1", leading=lambda: True)
    try:
        yield m, port
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def standby_port() -> Iterator[int]:
    """A standby replica (the chart runs 2 under leader election) mirrors the same AIJobs from its own
    indices and decides nothing; one ServiceMonitor scrapes both."""
    port = _free_port()
    server = _mirror(Metrics()).serve(port, addr="127.0.0.1", leading=lambda: False)
    try:
        yield port
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def prometheus(
    metrics: tuple[Metrics, int], standby_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    assert PROMETHEUS is not None
    _, metrics_port = metrics
    work: Path = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: energaizer\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}', '127.0.0.1:{standby_port}']}}]\n"
    )
    port = _free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _poll(
            lambda: urllib.request.urlopen(base + "/-/ready", timeout=1).status == 200, 30, "Prometheus ready"
        )
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _query(base: str, expr: str) -> dict[str, Any]:
    return _get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")


@live
def test_exposition_passes_promtool(metrics: tuple[Metrics, int]) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "the Debian prometheus package ships promtool"
    m, _ = metrics
    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(m.registry), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@live
def test_every_dashboard_query_runs_on_the_scraped_operator_metrics(
    metrics: tuple[Metrics, int], prometheus: str, dashboard: dict[str, Any]
) -> None:
    m, _ = metrics
    names_url = f"{prometheus}/api/v1/label/__name__/values"
    expected = {f"{n}_bucket" if t == "histogram" else n for n, t in CONTRACT.items()}

    def scraped_names() -> set[str]:
        names = set(_get(names_url)["data"])
        return names if names >= expected else set()

    # The operator keeps estimating AIJobs meanwhile: the latency histogram has a non-zero rate.
    scraped = _poll(scraped_names, 30, "the first scrape", tick=lambda: m.estimation_seconds.observe(0.004))
    exported = generate_latest(m.registry).decode()
    for name in DECISION_COUNTERS:
        assert f"\n{name} " in exported or f"\n{name}{{" in exported, f"{name} is exported"
    live_targets = targets(dashboard)

    def decide_more() -> None:
        """The operator keeps estimating and placing: the counters rise between scrapes."""
        m.estimation_seconds.observe(0.004)
        m.count_placement("l40s", 1000.0, 10.0)

    for title, target in live_targets:
        for name in metric_names(target["expr"]):
            family = {f"{name}_bucket"} if CONTRACT.get(name) == "histogram" else {name}
            assert family <= scraped, f"{title}: {name} is not in the live scrape"

    def all_answer() -> dict[str, list[dict[str, Any]]]:
        answers = {}
        for title, target in live_targets:
            body = _query(prometheus, grafana_expand(target["expr"]))
            assert body["status"] == "success", (title, body)
            if not body["data"]["result"]:
                return {}
            answers[f"{title}/{target['refId']}"] = body["data"]["result"]
        return answers

    answers = _poll(all_answer, 40, "every dashboard query to return data", tick=decide_more)

    def by(label: str, key: str) -> dict[str, float]:
        return {r["metric"][label]: float(r["value"][1]) for r in answers[key]}

    # Only each AIJob's placed GPU type counts, though every feasible type has a prediction series.
    assert by("namespace", "Predicted energy by namespace/A") == {"ml": 4.0e6 + 9.0e8, "research": 2.0e6}
    assert by("gpu_type", "Predicted energy by GPU type/A") == {"l40s": 4.0e6, "h100-sxm": 9.0e8 + 2.0e6}
    assert by("gpu_type", "Placements by GPU type/A") == {"l40s": 1.0, "h100-sxm": 2.0}
    assert by("namespace", "Predicted savings by namespace/A") == {"ml": 2.0e6 + 4.0e8, "research": 1.5e6}
    for key in ("Predicted energy placed (time range)/A", "Predicted savings (time range)/A"):
        assert float(answers[key][0]["value"][1]) >= 0.0, key
    assert "l40s" in by("gpu_type", "Predicted energy placed per hour by GPU type/A")
    assert by("gpu_type", "Free GPUs per type/A") == {"h100-sxm": 6.0, "l40s": 2.0, "a100-sxm4-80gb": 0.0}
    phases = by("phase", "AIJobs by phase/A")
    assert phases["Placed"] == 2.0 and phases["Running"] == 1.0 and sum(phases.values()) == 3.0
    assert float(answers["AIJobs/A"][0]["value"][1]) == 3.0
    p50 = float(answers["Estimation latency/A"][0]["value"][1])
    assert 0.0025 <= p50 <= 0.005, "every estimation took 4 ms: the p50 falls in the (2.5 ms, 5 ms] bucket"
    assert float(answers["Estimations per second/A"][0]["value"][1]) > 0
    assert len(answers["AIJob placements/A"]) == len(JOBS)
    assert by("gpu_type", "Predicted vs measured energy by GPU type/A") == {"l40s": 4.8e6, "h100-sxm": 1.6e6}
    # the prediction of the measured AIJobs only (llama-8b-finetune was not measured)
    assert by("gpu_type", "Predicted vs measured energy by GPU type/B") == {"l40s": 4.0e6, "h100-sxm": 2.0e6}
    assert by("namespace", "Measured energy by namespace/A") == {"ml": 4.8e6, "research": 1.6e6}
    buckets = by("le", "Measured / predicted energy: distribution/A")
    assert (
        buckets["0.8"] == 1.0 and buckets["1.1"] == 1.0 and buckets["1.25"] == 2.0 and buckets["+Inf"] == 2.0
    )
    median = by("gpu_type", "Median measured / predicted by GPU type/A")
    assert 1.1 <= median["l40s"] <= 1.25 and 0.67 <= median["h100-sxm"] <= 0.8
    namespaces = _get(
        f"{prometheus}/api/v1/label/namespace/values?match[]={urllib.parse.quote('energaizer_placement_info')}"
    )
    assert sorted(namespaces["data"]) == ["ml", "research"]  # the dashboard's namespace variable


@live
def test_a_misspelled_metric_is_caught(prometheus: str) -> None:
    """The live check above can fail: a name the operator does not export answers with no data."""
    body = _query(prometheus, "sum by (gpu_type) (energaizer_free_gpu)")
    assert body["status"] == "success" and body["data"]["result"] == []
    bad = _get_error(prometheus, "sum by (gpu_type (energaizer_free_gpus)")
    assert bad["status"] == "error" and bad["errorType"] == "bad_data"


def _get_error(base: str, expr: str) -> dict[str, Any]:
    try:
        return _query(base, expr)
    except urllib.error.HTTPError as exc:  # Prometheus answers 400 with a JSON body
        return json.loads(exc.read())
