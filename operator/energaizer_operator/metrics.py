"""Prometheus metrics (contract section 4) on the operator's own CollectorRegistry.

The registry is created per :class:`Metrics` instance (never the global one), so that re-importing
the operator in one process (kopf's ``KopfRunner``) cannot raise DuplicateTimeseries.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from energaizer_operator.listen import ServeOn, listen_socket
from energaizer_operator.models import PHASES

ERROR_RATIO_BUCKETS = (0.5, 0.67, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, float("inf"))


class SavingsTotal:
    """``energaizer_predicted_savings_joules_total``: a counter exported by a custom collector.

    prometheus_client refuses a ``Counter("energaizer_predicted_savings_joules")`` next to the
    contract gauge of that name (its base name is taken), although the exposed names differ
    (``..._total`` vs the gauge). Its ``describe`` names nothing (the registry then does not check
    its names, even with ``auto_describe``), and it exposes the counter as a plain ``counter`` family named ``..._total`` in the text
    format, which Prometheus parses as a counter."""

    NAME = "energaizer_predicted_savings_joules"
    HELP = "Predicted energy saved against each AIJob's worst feasible GPU type, summed at placement"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def inc(self, amount: float) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        with self._lock:
            return self._value

    def describe(self) -> list[CounterMetricFamily]:
        return []

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self.NAME, self.HELP)
        family.add_metric([], self.value)
        yield family


class _MetricsServer(ServeOn, ThreadingMixIn, WSGIServer):
    """What prometheus_client's ``start_http_server`` runs (a thread per scrape), on a socket of
    :func:`~energaizer_operator.listen.listen_socket`: ``start_http_server`` binds the one address family
    its ``addr`` resolves to, IPv4 only for its default ``0.0.0.0``."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # no line per scrape on stderr
        pass


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        job_labels = ["namespace", "aijob", "gpu_type"]
        r = self.registry
        self.predicted_energy = Gauge(
            "energaizer_predicted_energy_joules",
            "Predicted energy of an AIJob on a GPU type",
            job_labels,
            registry=r,
        )
        self.predicted_duration = Gauge(
            "energaizer_predicted_duration_seconds",
            "Predicted duration of an AIJob on a GPU type",
            job_labels,
            registry=r,
        )
        self.predicted_power = Gauge(
            "energaizer_predicted_power_watts",
            "Predicted average power of an AIJob on a GPU type",
            job_labels,
            registry=r,
        )
        self.placement_info = Gauge(
            "energaizer_placement_info", "1 for the GPU type an AIJob was placed on", job_labels, registry=r
        )
        self.savings = Gauge(
            "energaizer_predicted_savings_joules",
            "Predicted energy saved against the worst feasible GPU type",
            ["namespace", "aijob"],
            registry=r,
        )
        self.estimation_seconds = Histogram(
            "energaizer_estimation_seconds", "Time to estimate one AIJob on its candidate types", registry=r
        )
        self.aijobs = Gauge("energaizer_aijobs", "AIJobs by phase", ["phase"], registry=r)
        self.free_gpus = Gauge("energaizer_free_gpus", "Free GPUs per GPU type", ["gpu_type"], registry=r)
        # Extension: nodes whose GPU product is not in the catalog or the configured mapping.
        self.unknown_gpu_nodes = Gauge(
            "energaizer_unknown_gpu_nodes", "GPU nodes with an unknown GPU product", ["product"], registry=r
        )
        # Counters (Prometheus convention: `_total`, unit before it). The per-AIJob gauges above vanish
        # with their AIJob; these keep the history, e.g. `increase(energaizer_predicted_savings_joules_total[30d])`.
        # Labels: gpu_type only (bounded by the catalog), never namespace or AIJob name. Counted when the
        # watch shows a placement this process wrote (expect_placement, set_placement): a restart, another
        # replica's placements, a retried write or one that landed despite an error answer count once.
        self.placements_total = Counter(
            "energaizer_placements_total",
            "AIJobs placed (or recommended) per GPU type",
            ["gpu_type"],
            registry=r,
        )
        self.placed_energy_total = Counter(
            "energaizer_placed_predicted_energy_joules_total",
            "Predicted energy of the AIJobs placed on a GPU type, summed at placement",
            ["gpu_type"],
            registry=r,
        )
        self.savings_total = SavingsTotal()
        r.register(self.savings_total)  # describes nothing: see SavingsTotal
        # Measured energy (contract sections 4 and 5)
        self.measured_energy = Gauge(
            "energaizer_measured_energy_joules",
            "Measured (dcgm-exporter) energy of an AIJob's Job",
            job_labels,
            registry=r,
        )
        self.prediction_error_ratio = Histogram(
            "energaizer_prediction_error_ratio",
            "Measured / predicted energy of finished AIJobs",
            ["gpu_type"],
            buckets=ERROR_RATIO_BUCKETS,
            registry=r,
        )
        self._measured_type: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._estimated_types: dict[tuple[str, str], set[str]] = {}
        self._placed_type: dict[tuple[str, str], str] = {}
        self._expected: set[tuple[str, str]] = set()  # AIJobs this process writes a placement into
        self._free_types: set[str] = set()
        self._unknown: set[str] = set()
        for phase in PHASES:
            self.aijobs.labels(phase=phase).set(0)

    # Gauges every replica mirrors from the API (its indices): exported by the leader only, so that two
    # replicas scraped by one ServiceMonitor do not give every AIJob's series twice (a sum doubled, a join
    # on energaizer_placement_info "many-to-many"). Counters and histograms count what this process did.
    MIRRORED = (
        "energaizer_predicted_energy_joules",
        "energaizer_predicted_duration_seconds",
        "energaizer_predicted_power_watts",
        "energaizer_placement_info",
        "energaizer_predicted_savings_joules",
        "energaizer_aijobs",
        "energaizer_free_gpus",
        "energaizer_unknown_gpu_nodes",
        "energaizer_measured_energy_joules",
    )

    def serve(self, port: int, addr: str | None = None, leading: Callable[[], bool] | None = None) -> Any:
        """Serve ``/metrics`` from a thread of its own, on every IPv6 and IPv4 address (``addr`` None, so that
        Prometheus scrapes a pod IP of either family) or exactly ``addr``
        (:func:`energaizer_operator.listen.listen_socket`); with ``leading`` (leader election), a standby
        leaves out :attr:`MIRRORED` and says so in ``energaizer_leader`` (0; 1 on the leader). Returns the
        server (``shutdown()``)."""
        registry: Any = self.registry if leading is None else _LeaderView(self.registry, leading)
        server = _MetricsServer(listen_socket(addr, port), _QuietHandler)
        server.set_app(_text_format(make_wsgi_app(registry)))
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server

    def set_estimates(self, namespace: str, name: str, estimates: Iterable[Mapping[str, Any]]) -> None:
        """Series for every feasible estimated type (infeasible types have no prediction to show)."""
        key = (namespace, name)
        with self._lock:
            old = self._estimated_types.get(key, set())
            new: set[str] = set()
            for est in estimates:
                if not est.get("feasible"):
                    continue
                t = est["gpuType"]
                new.add(t)
                self.predicted_energy.labels(namespace, name, t).set(est["energyJoules"])
                self.predicted_duration.labels(namespace, name, t).set(est["durationSeconds"])
                self.predicted_power.labels(namespace, name, t).set(est["averagePowerWatts"])
            for t in old - new:
                self._remove_estimate(namespace, name, t)
            self._estimated_types[key] = new

    def expect_placement(self, namespace: str, name: str) -> None:
        """This process writes a placement into the AIJob's status (the placer, before each try): it is
        counted when the watch shows it (:meth:`set_placement`)."""
        with self._lock:
            self._expected.add((namespace, name))

    def set_placement(
        self,
        namespace: str,
        name: str,
        gpu_type: str | None,
        savings: float | None,
        *,
        energy_joules: float | None = None,
    ) -> None:
        """The AIJob's ``status.placement`` as the watch shows it. A placement that this process wrote
        (:meth:`expect_placement`) is counted (:meth:`count_placement`) when it appears: once, however
        often the write was tried and whatever its answer (a write can land although the API answered an
        error), and never for placements written by another replica or before a restart."""
        key = (namespace, name)
        with self._lock:
            old = self._placed_type.pop(key, None)
            if old is not None and old != gpu_type:
                self.placement_info.remove(namespace, name, old)
            if gpu_type is None:
                if old is not None:
                    self._try_remove(self.savings, namespace, name)
                return
            self._placed_type[key] = gpu_type
            self.placement_info.labels(namespace, name, gpu_type).set(1)
            self.savings.labels(namespace, name).set(savings or 0.0)
            expected = key in self._expected
            self._expected.discard(key)
        if expected and old is None:
            energy = energy_joules if energy_joules is not None and math.isfinite(energy_joules) else -1.0
            self.count_placement(gpu_type, energy, savings if savings is not None else 0.0)

    def count_placement(self, gpu_type: str, energy_joules: float, savings_joules: float) -> None:
        """One placement (see :meth:`set_placement`): the counters."""
        self.placements_total.labels(gpu_type=gpu_type).inc()
        if energy_joules >= 0:
            self.placed_energy_total.labels(gpu_type=gpu_type).inc(energy_joules)
        if math.isfinite(savings_joules):
            self.savings_total.inc(max(0.0, savings_joules))

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of a deleted AIJob."""
        key = (namespace, name)
        with self._lock:
            self._expected.discard(key)
            for t in self._estimated_types.pop(key, set()):
                self._remove_estimate(namespace, name, t)
            placed = self._placed_type.pop(key, None)
            if placed is not None:
                self._try_remove(self.placement_info, namespace, name, placed)
            self._try_remove(self.savings, namespace, name)

    def set_measured(self, namespace: str, name: str, gpu_type: str, energy_joules: float) -> None:
        key = (namespace, name)
        with self._lock:
            old = self._measured_type.get(key)
            if old is not None and old != gpu_type:
                self._try_remove(self.measured_energy, namespace, name, old)
            self._measured_type[key] = gpu_type
            self.measured_energy.labels(namespace, name, gpu_type).set(energy_joules)

    def forget_measured(self, namespace: str, name: str) -> None:
        with self._lock:
            old = self._measured_type.pop((namespace, name), None)
            if old is not None:
                self._try_remove(self.measured_energy, namespace, name, old)

    def set_phase_counts(self, counts: Mapping[str, int]) -> None:
        for phase in PHASES:
            self.aijobs.labels(phase=phase).set(counts.get(phase, 0))

    def set_inventory(self, free: Mapping[str, int], unknown_products: Iterable[str]) -> None:
        with self._lock:
            for t in self._free_types - set(free):
                self._try_remove(self.free_gpus, t)
            for t, n in free.items():
                self.free_gpus.labels(gpu_type=t).set(n)
            self._free_types = set(free)
            unknown = set(unknown_products)
            for p in self._unknown - unknown:
                self._try_remove(self.unknown_gpu_nodes, p)
            for p in unknown:
                self.unknown_gpu_nodes.labels(product=p).set(1)
            self._unknown = unknown

    def _remove_estimate(self, namespace: str, name: str, gpu_type: str) -> None:
        for gauge in (self.predicted_energy, self.predicted_duration, self.predicted_power):
            self._try_remove(gauge, namespace, name, gpu_type)

    @staticmethod
    def _try_remove(metric: Any, *labels: str) -> None:
        with contextlib.suppress(KeyError):
            metric.remove(*labels)


TEXT_FORMAT = "text/plain; version=0.0.4"


def _text_format(app: Callable[..., Any]) -> Callable[..., Any]:
    """Always the Prometheus text format 0.0.4, never OpenMetrics (which Prometheus asks for first): in
    OpenMetrics a counter's family is its name without ``_total``, so the savings counter
    (:class:`SavingsTotal`) and the contract gauge ``energaizer_predicted_savings_joules`` would be two
    families of one name, which the OpenMetrics parsers refuse ("Clashing name") and Prometheus reads as one
    family typed ``counter``: its metadata (Grafana's metric browser and query hints, remote write, the
    OpenTelemetry receiver) then called the contract gauge a counter. In the text format the counter's
    family is ``energaizer_predicted_savings_joules_total``."""

    def text_only(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return app({**environ, "HTTP_ACCEPT": TEXT_FORMAT}, start_response)

    return text_only


class _LeaderView:
    """What ``/metrics`` exposes of a registry under leader election: everything on the leader, all but
    the mirrored gauges on a standby, and ``energaizer_leader`` (extension) on both."""

    def __init__(self, registry: CollectorRegistry, leading: Callable[[], bool], names: Any = None) -> None:
        self._registry = registry
        self._leading = leading
        self._names = names  # a scrape's name[] selection (restricted_registry)

    def collect(self) -> Iterable[Metric]:
        leading = self._leading()
        source = self._registry if self._names is None else self._registry.restricted_registry(self._names)
        for family in source.collect():
            if leading or family.name not in Metrics.MIRRORED:
                yield family
        if self._names is None or "energaizer_leader" in self._names:
            family = GaugeMetricFamily(
                "energaizer_leader",
                "1 on the replica that holds the leader Lease and exports the AIJob gauges",
            )
            family.add_metric([], 1.0 if leading else 0.0)
            yield family

    def restricted_registry(self, names: Any) -> _LeaderView:
        return _LeaderView(self._registry, self._leading, list(names))
