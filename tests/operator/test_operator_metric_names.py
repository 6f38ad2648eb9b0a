"""Metric names follow Prometheus conventions and labels stay bounded (docs/operator.md, "Metrics").

The contract's names and types are checked in tests/deploy/test_deploy_dashboard.py."""

from __future__ import annotations

import re

from energaizer_operator.metrics import Metrics
from operator_testkit import filled_metrics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

UNITS = ("_joules", "_seconds", "_watts", "_ratio", "_bytes", "_info")
COUNTS = (
    "energaizer_aijobs",
    "energaizer_free_gpus",
    "energaizer_unknown_gpu_nodes",
)  # plain counts: no unit
BOUNDED_LABELS = {"namespace", "aijob", "gpu_type", "phase", "product"}


def _families() -> dict[str, object]:
    m = filled_metrics()
    text = generate_latest(m.registry).decode()
    # the text format shows each counter's and histogram's `_created` timestamp as a family of its own
    # the savings gauge and the savings counter share the family name (the counter's samples end in _total)
    return {
        (f.name, f.type): f for f in text_string_to_metric_families(text) if not f.name.endswith("_created")
    }


def test_counters_end_in_total_and_units_are_named() -> None:
    families = _families()
    counters = [f for f in families.values() if f.type == "counter"]
    assert {f.name for f in counters} >= {
        "energaizer_placements",
        "energaizer_predicted_savings_joules",
        "energaizer_placed_predicted_energy_joules",
    }
    for f in families.values():
        assert re.fullmatch(r"energaizer_[a-z0-9_]+", f.name), f.name
        for s in f.samples:
            if f.type == "counter" and s.name.endswith("_total"):
                assert s.name == f.name + "_total"
        if f.type != "counter" and f.name not in COUNTS:
            assert f.name.endswith(UNITS), f"{f.name}: name its unit"


def test_labels_are_bounded() -> None:
    for f in _families().values():
        for s in f.samples:
            assert set(s.labels) - {"le"} <= BOUNDED_LABELS, (f.name, s.labels)


def test_counters_count_each_placement_once() -> None:
    """A placement this process wrote is counted when the watch shows it: once however often the write
    was tried (or whatever the API answered), not the placements written before a restart or by another
    replica."""
    m = Metrics()
    m.set_placement("ns", "old", "l4", 7.0, energy_joules=20.0)  # written before this process started
    for name in ("a", "b", "other"):
        m.set_placement("ns", name, None, None)  # seen waiting
    for _ in range(3):  # written (tried three times), seen again and again
        m.expect_placement("ns", "a")
        m.expect_placement("ns", "b")
    for _ in range(3):
        m.set_placement("ns", "a", "l4", 3.0, energy_joules=9.0)
        m.set_placement("ns", "b", "l4", 1.0, energy_joules=5.0)
    m.set_placement("ns", "other", "l4", 2.0, energy_joules=4.0)  # another replica's
    assert m.registry.get_sample_value("energaizer_placements_total", {"gpu_type": "l4"}) == 2
    assert m.registry.get_sample_value("energaizer_predicted_savings_joules_total") == 4.0
    assert (
        m.registry.get_sample_value("energaizer_placed_predicted_energy_joules_total", {"gpu_type": "l4"})
        == 14.0
    )
    m.forget("ns", "a")  # the per-AIJob series go, the counters keep the history
    assert (
        m.registry.get_sample_value("energaizer_predicted_savings_joules", {"namespace": "ns", "aijob": "a"})
        is None
    )
    assert m.registry.get_sample_value("energaizer_placements_total", {"gpu_type": "l4"}) == 2


def test_a_standby_replica_leaves_the_mirrored_gauges_to_the_leader() -> None:
    """Every replica mirrors the AIJobs' gauges from its indices; two replicas behind one ServiceMonitor
    gave each series twice (the dashboard's sums doubled, its joins on placement_info many-to-many). Under
    leader election a standby serves the counters and histograms it has, not the mirrored gauges, and
    ``energaizer_leader`` says which it is; a ``name[]`` selection is filtered the same way."""
    import socket
    import urllib.request

    m = filled_metrics()
    leading = [False]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = m.serve(port, addr="127.0.0.1", leading=lambda: leading[0])
    try:

        def scrape(query: str = "") -> dict[str, list[float]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics{query}", timeout=60) as r:
                text = r.read().decode()
            return {f.name: [s.value for s in f.samples] for f in text_string_to_metric_families(text)}

        standby = scrape()
        assert not set(Metrics.MIRRORED) & set(standby)
        assert standby["energaizer_leader"] == [0.0] and "energaizer_estimation_seconds" in standby
        leading[0] = True
        leader = scrape()
        assert set(Metrics.MIRRORED) - {
            "energaizer_measured_energy_joules",
            "energaizer_unknown_gpu_nodes",
        } <= set(leader)
        assert leader["energaizer_leader"] == [1.0] and leader["energaizer_placement_info"] == [1.0]
        leading[0] = False
        assert scrape("?name[]=energaizer_free_gpus") == {}
        assert scrape("?name[]=energaizer_leader") == {"energaizer_leader": [0.0]}
    finally:
        server.shutdown()
    assert "energaizer_leader" not in _families()  # without leader election: one operator, no such gauge


def test_metrics_are_served_in_the_text_format_even_when_openmetrics_is_asked_for() -> None:
    """Prometheus asks for OpenMetrics first. There the savings counter's family (its name without
    `_total`) clashes with the contract gauge `energaizer_predicted_savings_joules`: OpenMetrics parsers
    refuse the exposition, and Prometheus typed the gauge `counter` (test_operator_prometheus.py)."""
    import urllib.request

    from operator_testkit import free_port

    m = filled_metrics()
    port = free_port()
    server = m.serve(port, addr="127.0.0.1")
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Accept": prometheus_accept}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            content_type, text = response.headers["Content-Type"], response.read().decode()
    finally:
        server.shutdown()
    assert content_type.startswith("text/plain; version=0.0.4")
    lines = text.splitlines()
    assert "# TYPE energaizer_predicted_savings_joules gauge" in lines
    assert "# TYPE energaizer_predicted_savings_joules_total counter" in lines  # a family of its own
