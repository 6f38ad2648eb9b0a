"""The kopf handler registry: every handler the operator has, in one place.

* indices: ``gpu_nodes`` (Nodes), ``gpu_pods`` (Pods holding GPUs), ``steered_jobs`` (the operator's
  Jobs, by owner uid), ``aijob_records`` (AIJobs, by uid, spec parsed once per generation);
* ``aijob_events``: starts the loops on the first AIJob event, and keeps the per-AIJob metrics equal
  to what ``status`` says (so they are rebuilt from the API at every start), and counts the placements
  this process wrote when they appear (``Metrics.set_placement``);
* startup/cleanup: the shared state, ``/metrics``, ``/healthz`` (own threads), the loops, the relist
  that drops index entries deleted while a watch was down (:mod:`energaizer_operator.relist`).

There is no ``@kopf.on.create``/``on.update``: estimation and placement are level-triggered loops
over the AIJob index (:mod:`energaizer_operator.estimating`, :mod:`energaizer_operator.placer`, which
also mirrors the steered Jobs' status), so
kopf keeps no per-object progress and a restart cannot lose an AIJob.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf

from energaizer_operator import kube
from energaizer_operator.constants import ANNOTATION_GPU_TYPE, GROUP, PLURAL, VERSION
from energaizer_operator.estimating import PARALLEL_WRITES, EstimateLoop
from energaizer_operator.health import HealthServer
from energaizer_operator.inventory import node_gpus, pod_gpus, steered_job
from energaizer_operator.leader import LeaderElection
from energaizer_operator.loops import Indices
from energaizer_operator.other_pods import OtherPodsLister
from energaizer_operator.placer import PARALLEL_CALLS, Placer
from energaizer_operator.records import aijob_record
from energaizer_operator.relist import Relister
from energaizer_operator.state import OperatorState

logger = logging.getLogger("energaizer_operator")

# the worker threads behind asyncio.to_thread: every API call the loops may have in flight at once (each
# holds a thread until answered, or until the API timeout when the server does not answer) plus as
# many again for the rest (estimates, placement decisions, the gate, the measurement, the relist).
# asyncio's default is min(32, CPUs + 4): 6 threads on 2 CPUs, so 6 unanswered status writes held up
# every estimate and placement for the API timeout.
WORKER_THREADS = 2 * (PARALLEL_WRITES + PARALLEL_CALLS)


def _state(memo: kopf.Memo) -> OperatorState:
    return memo["state"]


# ------------------------------------------------------------------------------------- lifecycle


async def _heartbeat(health: HealthServer) -> None:
    while True:
        health.beat()
        await asyncio.sleep(1.0)


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    gpu_nodes: kopf.Index,
    gpu_pods: kopf.Index,
    steered_jobs: kopf.Index,
    aijob_records: kopf.Index,
    measure_pods: kopf.Index,
    measure_jobs: kopf.Index,
    measure_candidates: kopf.Index,
    **_: Any,
) -> None:
    state = _state(memo)
    cfg = state.settings
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="worker")
    )
    # kopf turns its per-object log lines at this level into Events ("Handler ... succeeded" for every
    # watch event): only warnings. The operator's own Events are posted by reporting.report.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300  # reconnect watches now and then (kopf default: never)
    kube.set_request_timeout(cfg.api_timeout_seconds)  # the operator's own calls
    # kopf's own requests (its patches, Events, lists; a watch's connect) under the same limit: kopf's
    # default is 5 minutes, so one request to a server that died without a reset held up every Event
    # posted after it (kopf posts them one by one) that long. A timed-out request is retried by kopf.
    settings.networking.request_timeout = cfg.api_timeout_seconds
    if cfg.leader_election:  # elected from the start: a standby keeps its indices warm meanwhile
        state.election = LeaderElection(cfg)
        state.tasks.append(asyncio.get_running_loop().create_task(state.election.run(), name="election"))
    if cfg.metrics_port:  # a standby leaves out the gauges the leader exports (Metrics.MIRRORED)
        leading = state.is_leader if state.election is not None else None
        state.metrics_server = state.metrics.serve(cfg.metrics_port, leading=leading)
    if cfg.health_port:
        state.health = HealthServer(cfg.health_port, lambda: state.failed).start()
        # tracked, so that cleanup cancels it: kopf waits 5 s on exit for any task still running
        state.tasks.append(asyncio.get_running_loop().create_task(_heartbeat(state.health), name="heartbeat"))
    indices = Indices(
        aijobs=aijob_records,
        nodes=gpu_nodes,
        pods=gpu_pods,
        jobs=steered_jobs,
        deleted=state.deleted,
        # empty unless ENERGAIZER_PROMETHEUS_URL is set (measured_handlers.py)
        more={"pods": [measure_pods], "jobs": [measure_jobs], "aijobs": [measure_candidates]},
    )
    if cfg.relist_interval_seconds > 0:  # every replica: a standby's view must be right when it leads
        relister = Relister(cfg, state.metrics, indices)
        state.tasks.append(asyncio.get_running_loop().create_task(relister.run(), name="relist"))
    if cfg.namespaces and cfg.other_pods_interval_seconds > 0:  # every replica, like the relist
        lister = OtherPodsLister(cfg, indices.others)
        state.tasks.append(asyncio.get_running_loop().create_task(lister.run(), name="other-pods"))
    state.estimator = EstimateLoop(cfg, state.metrics, indices, is_leader=state.is_leader)
    state.placer = Placer(cfg, state.metrics, indices, is_leader=state.is_leader)
    logger.info("energaizer operator started: %s", cfg.model_dump())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state = _state(memo)
    await state.stop()
    if state.election is not None:
        await state.election.release()
    # each shutdown() waits for its server's thread to see it (up to its 0.5 s poll): both at once, in
    # threads, so that neither waits for the other nor holds up the event loop meanwhile
    servers = [server for server in (state.metrics_server, state.health) if server is not None]
    await asyncio.gather(*(asyncio.to_thread(server.shutdown) for server in servers))


# ---------------------------------------------------------------------------------------- indices


@kopf.index("", "v1", "nodes")
def gpu_nodes(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    cfg = _state(memo).settings
    return node_gpus(
        body, product_label=cfg.gpu_product_label, gpu_resource=cfg.gpu_resource, mapping=cfg.product_map
    )


@kopf.index("", "v1", "pods")
def gpu_pods(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    return pod_gpus(body, gpu_resource=_state(memo).settings.gpu_resource)


@kopf.index("batch", "v1", "jobs", annotations={ANNOTATION_GPU_TYPE: kopf.PRESENT})
def steered_jobs(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    job = steered_job(body, product_label=_state(memo).settings.gpu_product_label)
    return {job.owner_uid: job} if job is not None and job.owner_uid else None


@kopf.index(GROUP, VERSION, PLURAL)
def aijob_records(body: kopf.Body, uid: str, memo: kopf.Memo, **_: Any) -> Any:
    state = _state(memo)
    return {uid: aijob_record(body, state.specs, state.settings.default_mode)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def aijob_events(
    event: kopf.RawEvent, body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, **_: Any
) -> None:
    state = _state(memo)
    # Idempotent; kopf runs this only once its indices are populated, in its event-posting context.
    state.start(state.estimator, state.placer)
    if event.get("type") == "DELETED":
        state.metrics.forget(namespace, name)
        return
    status = body.get("status") or {}
    state.metrics.set_estimates(namespace, name, status.get("estimates") or [])
    placement = status.get("placement") or {}
    state.metrics.set_placement(
        namespace,
        name,
        placement.get("gpuType"),
        placement.get("savingsJoules"),
        energy_joules=placement.get("predictedEnergyJoules"),
    )
