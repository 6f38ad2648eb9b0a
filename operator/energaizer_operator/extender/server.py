"""The HTTP side of ``energaizer extender``: kube-scheduler's extender API (contract section 5).

``POST /scheduler/prioritize`` -> HostPriorityList, ``POST /scheduler/filter`` -> ExtenderFilterResult,
``GET /healthz`` -> 200, ``GET /readyz`` -> 200 once the node cache has its first list (or runs
without one), ``GET /metrics`` -> Prometheus text. A body that is not ExtenderArgs gets HTTP 400 with
``{"Error": ...}``; a pod whose ``energaizer.io/workload`` annotation is malformed gets the filter's
``Error`` field (HTTP 200, as kube-scheduler expects) and HTTP 422 from prioritize. No request can
stop the server.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

from energaizer.errors import InvalidInputError
from energaizer_operator.extender.node_cache import NodeCache
from energaizer_operator.extender.scoring import BadRequest, Scorer, parse_args
from energaizer_operator.listen import listen_socket, where

logger = logging.getLogger("energaizer_operator.extender")

# A NodeList of thousands of nodes, and no more than the chart's 512 Mi memory limit can decode: a 63 MiB body
# peaked at 450 MB resident; a larger one gets HTTP 413 (kube-scheduler: an error, skipped as ignorable)
# instead of the process killed for memory with every request it was answering.
MAX_BODY_BYTES = 48 * 1024 * 1024
SCORER = web.AppKey("scorer", Scorer)
NODE_CACHE = web.AppKey("node_cache", object)
METRICS = web.AppKey("metrics", object)
_warned_no_cache = False


class EstimatorRuns:
    """``energaizer_extender_estimator_runs_total``: the scorer's count of estimator calls, read at each
    scrape. A counter (it only goes up; ``rate()`` is what a dashboard asks of it), so a collector of its
    own: prometheus_client's ``Counter`` has no ``set_function``."""

    NAME = "energaizer_extender_estimator_runs"  # exposed with _total (a counter family's sample)
    HELP = "estimator calls since start (one per new workload and set of new GPU types)"

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.NAME, self.HELP)]

    def collect(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.NAME, self.HELP, value=self._scorer.estimator_runs)]


class ExtenderMetrics:
    def __init__(self, scorer: Scorer) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EstimatorRuns(scorer))
        Gauge(
            "energaizer_extender_cached_verdicts",
            "(workload, GPU type) verdicts held in the score cache",
            registry=self.registry,
        ).set_function(lambda: len(scorer.verdicts))
        self.requests = Counter(
            "energaizer_extender_requests",
            "extender requests by verb and outcome",
            ["verb", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "energaizer_extender_request_seconds",
            "time to answer one extender request",
            ["verb"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )


def _json(obj: Any, status: int = 200) -> web.Response:
    """orjson both ways: in the Nodes form the filter answers with the NodeList kube-scheduler sent, 21 MB for
    5,000 nodes, which the standard library took ~0.5 s to encode (orjson ~0.03 s)."""
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"Error": message}, status)


def _node_types(
    scorer: Scorer, cache: NodeCache | None, items: list[Mapping[str, Any]] | None, names: list[str] | None
) -> dict[str, str | None]:
    if items is not None:
        return {n["metadata"]["name"]: scorer.gpu_type_of_node(n) for n in items}
    assert names is not None
    if cache is None:
        global _warned_no_cache
        if names and not _warned_no_cache:  # a silent misconfiguration otherwise: no pod is ever steered
            _warned_no_cache = True
            logger.warning(
                "NodeNames requests (nodeCacheCapable: true) but no node cache (--no-node-cache): every node "
                "is of unknown GPU type, so every pod gets equal scores and no node filtered; run with the "
                "node cache or configure nodeCacheCapable: false"
            )
        return dict.fromkeys(names)
    return {name: scorer.gpu_type_of_product(cache.product(name)) for name in names}


async def _args(request: web.Request) -> tuple[Mapping[str, Any], list | None, list[str] | None]:
    raw = await request.read()
    try:
        body = _decode(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    return parse_args(body)


def _decode(raw: bytes) -> Any:
    """Strict JSON (no NaN), UTF-8 as kube-scheduler sends it, nesting capped at 1024 (orjson). The cyclic
    garbage collector is paused meanwhile: decoded JSON holds no cycles, and the containers of a 5,000-node
    NodeList (21 MB) set off full collections over every object of the process, which doubled the time to
    decode it (0.27 -> 0.54 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(raw)
    finally:
        if enabled:
            gc.enable()


# the outcome label of a request answered normally but about a pod whose workload annotation is not valid
# input (filter's Error, prioritize's 422): set on the request by its handler
OUTCOME = "energaizer_outcome"
INVALID_WORKLOAD = "invalid_workload"


def _answer(verb: str, handler: Any) -> Any:
    async def serve(request: web.Request) -> web.Response:
        metrics: ExtenderMetrics = request.app[METRICS]
        started = time.perf_counter()
        outcome = "ok"
        try:
            response = await handler(request)
            outcome = request.get(OUTCOME, outcome)
            return response
        except BadRequest as exc:
            outcome = "bad_request"
            return _error(400, str(exc))
        except web.HTTPRequestEntityTooLarge:
            outcome = "bad_request"
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes: use nodeCacheCapable: true")
        except web.HTTPException:
            outcome = "bad_request"
            raise
        except Exception:
            outcome = "error"
            logger.exception("%s failed", verb)
            return _error(500, "internal error (see the extender's log)")
        finally:
            metrics.requests.labels(verb, outcome).inc()
            metrics.seconds.labels(verb).observe(time.perf_counter() - started)

    return serve


async def prioritize(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    pod, items, names = await _args(request)
    nodes = _node_types(scorer, request.app[NODE_CACHE], items, names)
    try:
        return _json(scorer.prioritize(pod, nodes))
    except InvalidInputError as exc:
        logger.info("prioritize %s: %s", _pod_key(pod), exc)
        request[OUTCOME] = INVALID_WORKLOAD
        return _error(422, str(exc))


async def filter_nodes(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    pod, items, names = await _args(request)
    nodes = _node_types(scorer, request.app[NODE_CACHE], items, names)
    try:
        passed, failed = scorer.filter(pod, nodes)
        error = ""
    except InvalidInputError as exc:
        logger.info("filter %s: %s", _pod_key(pod), exc)
        request[OUTCOME] = INVALID_WORKLOAD
        passed, failed, error = list(nodes), {}, str(exc)
    result: dict[str, Any] = {
        "FailedNodes": failed,
        # the same nodes: a GPU type that cannot run the workload is not fixed by preempting pods
        "FailedAndUnresolvableNodes": failed,
        "Error": error,
    }
    if items is not None:
        keep = set(passed)
        result["Nodes"] = {
            "apiVersion": "v1",
            "kind": "NodeList",
            "items": [n for n in items if n["metadata"]["name"] in keep],
        }
        result["NodeNames"] = None
    else:
        result["NodeNames"] = passed
        result["Nodes"] = None
    return _json(result)


def _pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    cache = request.app[NODE_CACHE]
    if cache is not None and not cache.synced.is_set():
        return web.Response(status=503, text="node cache not synced yet")
    return web.Response(text="ok")


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS].registry
    return web.Response(body=generate_latest(registry), content_type="text/plain")


def make_app(scorer: Scorer, cache: NodeCache | None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SCORER] = scorer
    app[NODE_CACHE] = cache
    app[METRICS] = ExtenderMetrics(scorer)
    app.router.add_post("/scheduler/prioritize", _answer("prioritize", prioritize))
    app.router.add_post("/scheduler/filter", _answer("filter", filter_nodes))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def run(
    host: str | None = None, port: int = 8888, *, node_cache: bool = True, profile: str | None = None
) -> None:
    """Serve until SIGINT/SIGTERM on ``port`` of every IPv6 and IPv4 address (``host`` None; IPv4 alone
    where the host has no IPv6), or of exactly ``host`` (:func:`energaizer_operator.listen.listen_socket`;
    an ``OSError`` where it cannot be bound). Settings (GPU label, product map, profile, log level, API
    timeout) are the operator's ``ENERGAIZER_*`` variables; ``profile`` (``energaizer extender --profile``) replaces
    ``ENERGAIZER_PROFILE``."""
    from energaizer_operator.settings import OperatorSettings

    settings = OperatorSettings.from_env()
    if profile is not None:
        settings = settings.model_copy(update={"profile": profile})
    if settings.profile:
        from energaizer.profile import load_profile

        load_profile(settings.profile)  # a bad profile is a start-up error, not a failing request
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scorer = Scorer(
        product_label=settings.gpu_product_label,
        gpu_resource=settings.gpu_resource,
        product_map=settings.product_map,
        profile=settings.profile,
    )
    if node_cache:  # the node cache's list and watch calls: the operator's API timeout
        from energaizer_operator import kube

        kube.set_request_timeout(settings.api_timeout_seconds)
    cache = NodeCache(settings.gpu_product_label) if node_cache else None
    app = make_app(scorer, cache)
    if cache is not None:

        async def start_cache(_: web.Application) -> None:
            cache.start()

        async def stop_cache(_: web.Application) -> None:
            cache.stop()

        app.on_startup.append(start_cache)
        app.on_cleanup.append(stop_cache)
    # our socket, not run_app(host=...): asyncio binds an IPv6 address with IPV6_V6ONLY on (no IPv4 clients)
    sock = listen_socket(host, port)
    logger.info("energaizer extender on %s (node cache %s)", where(sock), "on" if cache else "off")
    gc.freeze()  # what start-up loaded (modules, catalog) lives on: keep it out of every collection
    web.run_app(app, sock=sock, print=None, access_log=None)
