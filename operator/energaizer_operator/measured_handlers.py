"""kopf handlers of measured energy (contract section 5): only active with ``ENERGAIZER_PROMETHEUS_URL``.

* indices ``measure_pods`` (pods with their node and run window: Job pods by Job, GPU pods by node),
  ``measure_nodes`` (time-sliced GPU nodes) and ``measure_jobs`` (the operator's Jobs, finished or not);
* ``measure_candidates`` (placed AIJobs without ``status.measured`` nor a final reason for none) and the
  :class:`Measurer` loop over them (every 2 s; not a kopf timer, which would put a finalizer on every
  AIJob): once an AIJob's Job has finished and its pods have ended, it queries Prometheus and writes
  ``status.measured`` and the ``Measured`` condition (or only the condition, with the reason there is no
  number), an Event, the
  ``energaizer_measured_energy_joules`` gauge and one ``energaizer_prediction_error_ratio`` observation.
  Retryable outcomes (Prometheus down, data not scraped yet) back off per AIJob
  (``ENERGAIZER_MEASURE_INTERVAL_SECONDS`` doubling up to 10 minutes); nothing is lost across restarts,
  since an AIJob without ``status.measured`` is simply tried again;
* ``measured_gauge``: starts the loop on the first AIJob event (kopf's Event posting is set up there),
  keeps the gauge in step with ``status.measured`` (after a restart too) and drops it with the AIJob.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from energaizer_operator import (
    ANNOTATION_ENERGY,
    ANNOTATION_GPU_TYPE,
    GROUP,
    PLURAL,
    VERSION,
    kube,
)
from energaizer_operator.conditions import set_condition
from energaizer_operator.inventory import aijob_owner_uid
from energaizer_operator.loops import DeletedObjects, index_values
from energaizer_operator.measured import (
    ENERGY_METRIC,
    Backoff,
    Outcome,
    PodRun,
    Reason,
    Series,
    hidden_sharing,
    iso_time,
    joined_series,
    node_time_sliced,
    overlapping,
    parse_matrix,
    parse_time,
    pod_run,
    pods_selector,
    ran,
    range_queries,
    uuids_selector,
)
from energaizer_operator.promclient import PrometheusClient, PrometheusUnavailable
from energaizer_operator.reporting import patch_status_merged
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.measured")

CONDITION = "Measured"
LOOP_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
DECIDED_SECONDS = 120.0


@dataclass(frozen=True)
class JobRun:
    namespace: str
    name: str
    finished: bool
    completed_at: float | None
    uid: str = ""  # the Job's metadata.uid (relist.py finds the entries of deleted Jobs by uid)
    owner_uid: str = ""  # the uid of the AIJob that owns it (its ownerReference)


def _settings(memo: kopf.Memo) -> OperatorSettings:
    return memo["state"].settings


def job_run(body: Mapping[str, Any]) -> JobRun:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    done = [
        c
        for c in status.get("conditions") or []
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
    ]
    completed = parse_time(status.get("completionTime"))
    if completed is None and done:
        completed = parse_time(done[0].get("lastTransitionTime"))
    owner_uid = aijob_owner_uid(meta)
    return JobRun(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        bool(done),
        completed,
        uid=str(meta.get("uid") or ""),
        owner_uid=owner_uid,
    )


# ---------------------------------------------------------------------------------------- indices


def _enabled(memo: kopf.Memo, **_: Any) -> bool:
    """Every handler here is a no-op filter when measurement is off (no index memory, no handler logs)."""
    return bool(_settings(memo).prometheus_url)


@kopf.index("", "v1", "pods", when=_enabled)
def measure_pods(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    """Pods of Jobs by ("job", namespace, Job), and GPU pods by ("node", node) (time-slicing neighbours)."""
    run = pod_run(body, _settings(memo).gpu_resource)
    keys: dict[tuple[str, ...], PodRun] = {}
    if run.job:
        keys[("job", run.namespace, run.job)] = run
    if run.node and run.gpus > 0:
        keys[("node", run.node)] = run
    return keys or None


@kopf.index("", "v1", "nodes", when=_enabled)
def measure_nodes(body: kopf.Body, name: str, memo: kopf.Memo, **_: Any) -> Any:
    """Nodes whose GPUs are time-sliced (or MPS-shared) by the device plugin."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return {name: True} if node_time_sliced(labels, _settings(memo).gpu_product_label) else None


@kopf.index("batch", "v1", "jobs", annotations={ANNOTATION_GPU_TYPE: kopf.PRESENT}, when=_enabled)
def measure_jobs(body: kopf.Body, **_: Any) -> Any:
    run = job_run(body)
    return {(run.namespace, run.name): run}


@kopf.index(GROUP, VERSION, PLURAL, when=_enabled)
def measure_candidates(body: kopf.Body, uid: str, **_: Any) -> Any:
    found = candidate(body)
    return {uid: found} if found is not None else None


# ------------------------------------------------------------------------------------------- loop


def _final(status: Mapping[str, Any]) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == CONDITION:
            try:
                return Reason(cond.get("reason")).final
            except ValueError:
                return False
    return False


@dataclass(frozen=True)
class Candidate:
    """A placed AIJob without a measurement (nor a final reason for none): what the loop needs of it."""

    namespace: str
    name: str
    uid: str
    job_name: str
    gpu_type: str
    predicted_energy_joules: float | None
    # feasible type -> predicted energy (status.estimates): the prediction of the type the pods ran on,
    # when Kueue admitted a queue-labelled AIJob's Job on another allowed flavor than the placed type
    estimates: tuple[tuple[str, float], ...] = ()
    # the placer failed the AIJob because its Job was deleted before it finished (placer.Placer._lost)
    job_deleted: bool = False
    # the placer mirrored its Job's end (phase and ``Running`` reason Succeeded or Failed): the Job finished,
    # even when it is gone since (a TTL, or deleted by hand, before the measurement was written)
    job_ended: bool = False
    # when the placer mirrored that end (the ``Running`` condition's lastTransitionTime): the Job's end once
    # the Job is gone, for ENERGAIZER_MEASURE_GIVE_UP_SECONDS
    ended_at: float | None = None

    @property
    def ref(self) -> dict[str, Any]:
        """A minimal body for Events."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIJob",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }


def candidate(body: Mapping[str, Any]) -> Candidate | None:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    job_name = (status.get("placement") or {}).get("jobName")
    if not job_name or status.get("measured") or _final(status):
        return None
    job_ended = _running_reason(status, ENDED, ENDED)
    return Candidate(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        str(meta.get("uid") or ""),
        str(job_name),
        _gpu_type(status, meta),
        _predicted(status, meta),
        tuple(
            (str(e["gpuType"]), float(e["energyJoules"]))
            for e in status.get("estimates") or []
            if e.get("feasible") and e.get("gpuType") and e.get("energyJoules") is not None
        ),
        job_deleted=_running_reason(status, ("Failed",), (Reason.JOB_DELETED,)),
        job_ended=job_ended,
        ended_at=_running_since(status) if job_ended else None,
    )


ENDED = ("Succeeded", "Failed")  # the AIJob phases, and Running reasons, the placer mirrors a Job's end as


def _running_reason(status: Mapping[str, Any], phases: Sequence[str], reasons: Sequence[str]) -> bool:
    """The AIJob is in one of ``phases`` and its ``Running`` condition has one of ``reasons``: the placer
    failed it with ``JobDeleted`` (its Job was deleted before it finished), or mirrored its Job's end."""
    if status.get("phase") not in phases:
        return False
    return any(
        c.get("type") == "Running" and c.get("reason") in reasons for c in status.get("conditions") or []
    )


def job_pods(pods: Sequence[PodRun], job_uid: str) -> list[PodRun]:
    """The pods of the Job ``job_uid`` among ``pods``, those indexed under its name: Jobs of one name follow
    each other (an AIJob deleted and created again, a Job replaced by hand), and pods of an earlier one may
    outlive it (orphaned, or stuck on a lost node), which would add that run's GPUs and time to this one's,
    or hold its measurement back. Without a uid (a Job deleted before this process saw it): the pods of the
    Job whose pods started last, the latest run of that name."""
    if job_uid:
        return [p for p in pods if p.job_uid == job_uid]
    runs: dict[str, list[PodRun]] = {}
    for p in pods:
        runs.setdefault(p.job_uid, []).append(p)
    if len(runs) <= 1:
        return list(pods)
    return max(runs.values(), key=lambda group: max((p.started or 0.0 for p in group), default=0.0))


def _running_since(status: Mapping[str, Any]) -> float | None:
    """The ``Running`` condition's lastTransitionTime (epoch seconds)."""
    for c in status.get("conditions") or []:
        if c.get("type") == "Running":
            return parse_time(c.get("lastTransitionTime"))
    return None


def _unended(pods: Sequence[PodRun]) -> list[PodRun]:
    """The pods that have not ended (yet): Running, or started and not every container terminated."""
    return [p for p in pods if p.phase == "Running" or (p.started is not None and p.finished is None)]


def _where(p: PodRun) -> str:
    return f"pod {p.name}" + (f" (node {p.node})" if p.node else "")


def ran_on(pods: Sequence[PodRun], node_types: Mapping[str, str | None]) -> str | None:
    """The one GPU type (catalog id) of the nodes the pods ran on; None when unknown or mixed."""
    types = {node_types.get(p.node) for p in ran(pods) if p.node}
    return types.pop() if len(types) == 1 else None


def _gpu_type(status: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    return str(
        (status.get("placement") or {}).get("gpuType")
        or (meta.get("annotations") or {}).get(ANNOTATION_GPU_TYPE)
        or "unknown"
    )


def _predicted(status: Mapping[str, Any], meta: Mapping[str, Any]) -> float | None:
    value = (status.get("placement") or {}).get("predictedEnergyJoules")
    if value is None:
        value = (meta.get("annotations") or {}).get(ANNOTATION_ENERGY)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def _pod_series(
    client: PrometheusClient, pods: Sequence[PodRun], start: float, end: float
) -> list[Series]:
    """Energy series labelled with ``pods`` over [start, end], one query per namespace."""
    out: list[Series] = []
    by_ns: dict[str, list[str]] = {}
    for p in pods:
        by_ns.setdefault(p.namespace, []).append(p.name)
    for ns, names in sorted(by_ns.items()):
        out.extend(await _range(client, pods_selector(ns, names), start, end))
    return out


async def _range(client: PrometheusClient, selector: str, start: float, end: float) -> list[Series]:
    """Every raw sample of ``selector`` in (start, end], queried in pieces (:func:`range_queries`)."""
    pieces: list[Series] = []
    for expr, at in range_queries(selector, start, end):
        _kind, found = await client.query(expr, at)
        pieces.extend(parse_matrix(found))
    return joined_series(pieces)


async def measure(
    client: PrometheusClient,
    pods: list[PodRun],
    *,
    margin_seconds: float,
    now: float,
    neighbours: Sequence[PodRun] = (),
) -> Outcome:
    """Query Prometheus for the job's pods and attribute (:func:`energaizer_operator.measured.attribute`);
    ``neighbours``: other GPU pods that overlapped them on time-sliced nodes (:func:`hidden_sharing`)."""
    from energaizer_operator.measured import attribute

    runs = ran(pods)
    if not runs:
        return attribute(pods, [], [], margin_seconds=margin_seconds)
    start = min(p.started for p in runs) - margin_seconds  # type: ignore[type-var,operator]
    end = min(now, max(p.finished for p in runs) + margin_seconds)  # type: ignore[type-var,operator]
    discovery = await _pod_series(client, runs, start, end)
    uuids = {s.labels.get("UUID", "") for s in discovery} - {""}
    series = []
    if uuids:
        series = await _range(client, uuids_selector(uuids), start, end)
    outcome = attribute(pods, discovery, series, margin_seconds=margin_seconds)
    if outcome.measured and neighbours:
        found = await _pod_series(client, neighbours, start, end)
        held = {d.uuid: set(d.pods) for d in outcome.devices}
        hidden = hidden_sharing(held, neighbours, found, margin_seconds, now)
        if hidden is not None:
            return hidden
    return outcome


class Measurer:
    """One loop over the candidates (not a kopf timer: timers put a finalizer on every AIJob they run for)."""

    def __init__(self, cfg: OperatorSettings, memo: kopf.Memo) -> None:
        self.cfg, self.memo = cfg, memo
        self.client = PrometheusClient(cfg.prometheus_url or "")
        self.backoff = Backoff(
            cfg.measure_interval_seconds, max(MAX_BACKOFF_SECONDS, cfg.measure_interval_seconds)
        )
        self.decided: dict[str, float] = {}
        # AIJob uid -> the uid of its Job, as last seen: which of the pods indexed under the Job's name are
        # its own once the Job is gone (deleted by a TTL or by hand before the measurement was written)
        self.job_uids: dict[str, str] = {}
        self.task: asyncio.Task | None = None
        self.gpu_nodes: kopf.Index | None = None

    def start(
        self,
        candidates: kopf.Index,
        pods: kopf.Index,
        jobs: kopf.Index,
        nodes: kopf.Index,
        gpu_nodes: kopf.Index | None = None,
    ) -> None:
        """Idempotent; called from an AIJob event handler so that kopf's Event posting works in the task.
        ``gpu_nodes``: the operator's node index (the GPU type of each node, for :func:`ran_on`)."""
        self.gpu_nodes = gpu_nodes
        if self.task is None:
            self.task = asyncio.create_task(self.run(candidates, pods, jobs, nodes))
            self.task.add_done_callback(_report_end)

    @property
    def _deleted(self) -> DeletedObjects:
        """Indexed objects deleted while a watch was down (relist.py): kopf keeps them in these indices
        too. A pod of the Job deleted then would stay ``Running`` here and hold the measurement back."""
        return self.memo["state"].deleted

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.close()

    async def run(
        self, candidates: kopf.Index, pods: kopf.Index, jobs: kopf.Index, nodes: kopf.Index
    ) -> None:
        while True:
            await asyncio.sleep(LOOP_SECONDS)
            for cand in self._deleted.live(index_values(candidates)):
                try:
                    await self.measure_one(cand, pods, jobs, nodes)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one AIJob's failure must not stop the others' measurement
                    logger.exception("AIJob %s/%s: measurement failed", cand.namespace, cand.name)

    def _node_types(self) -> dict[str, str | None]:
        live = self.memo["state"].deleted.live
        stores = list(self.gpu_nodes.values()) if self.gpu_nodes is not None else []
        return {n.name: n.gpu_type for n in live(n for store in stores for n in store)}

    async def measure_one(
        self, cand: Candidate, measure_pods: kopf.Index, measure_jobs: kopf.Index, measure_nodes: kopf.Index
    ) -> None:
        cfg, uid, live = self.cfg, cand.uid, self._deleted.live
        namespace, name, job_name = cand.namespace, cand.name, cand.job_name
        # the AIJob's own Job: a Job of that name owned by another AIJob (the Job of a deleted AIJob of the
        # same name, not collected yet) is not it; of several (a deleted one the relist has not found gone
        # yet), the one indexed last
        owned = [j for j in live(measure_jobs.get((namespace, job_name), [])) if j.owner_uid == uid]
        job = owned[-1] if owned else None
        if job is not None and job.uid:
            self.job_uids[uid] = job.uid  # (a standby too: it may take over after the Job is gone)
        if not self.memo["state"].is_leader():
            return  # only the leader writes; a standby takes over the same candidates when elected
        gone = job is None and cand.job_ended and not cand.job_deleted
        if gone:
            # the Job finished and was deleted since (a TTL, or by hand) before it was measured: its pods,
            # while they are indexed, still give the run's window and GPUs; none known: NoPods (final)
            job = JobRun(
                namespace, job_name, True, cand.ended_at, uid=self.job_uids.get(uid, ""), owner_uid=uid
            )
        if job is None or not job.finished:
            if (
                cand.job_deleted
            ):  # it never finishes: waiting for it would keep the AIJob a candidate for ever
                await self._job_deleted(cand)
            return
        pods = job_pods(live(measure_pods.get(("job", namespace, job_name), [])), job.uid)
        ended = job.completed_at or max((p.finished or 0.0 for p in pods), default=0.0)
        now = time.time()
        stuck = bool(ended) and now - ended > cfg.measure_give_up_seconds  # e.g. a pod of a lost node
        unended = _unended(pods)
        # deleted, its grace period over, and still not ended: its kubelet does not confirm (a lost node)
        lost = [p for p in unended if p.deleting_at is not None and now > p.deleting_at]
        if unended and not stuck and not lost:
            return  # the Job is finished but some pod is still being torn down
        backoff, decided = self.backoff, self.decided
        if now - decided.get(uid, -math.inf) < DECIDED_SECONDS or not backoff.due(uid, now):
            return  # decided (the index can lag the written status), or backing off
        if unended:
            # its GPUs' energy up to an end nobody reported is unknown: left out, the number would under-count
            outcome = self._unended_outcome((lost or unended)[0], stuck)
        else:
            sliced = {p.node for p in pods if p.node and p.node in measure_nodes}
            others = [o for node in sorted(sliced) for o in live(measure_pods.get(("node", node), []))]
            try:
                outcome = await measure(
                    self.client,
                    pods,
                    margin_seconds=cfg.measure_margin_seconds,
                    now=now,
                    neighbours=overlapping(ran(pods), others, now),
                )
            except PrometheusUnavailable as exc:
                outcome = Outcome(Reason.UNAVAILABLE, str(exc)[:500])
            except Exception as exc:
                # a bug must not stop the other AIJobs' measurement: log, condition, retry
                logger.exception("AIJob %s/%s: measurement failed", namespace, name)
                outcome = Outcome(
                    Reason.UNAVAILABLE, f"measurement failed: {type(exc).__name__}: {exc}"[:500]
                )
        if outcome.reason is Reason.NO_PODS and gone:
            outcome = Outcome(
                Reason.NO_PODS,
                f"the Job {job_name} finished and was deleted before it was measured, and no pod of it is "
                "known with a start and finish time (its pods went with it: keep ttlSecondsAfterFinished "
                "above a few minutes)",
            )
        # no sample after a pod's end this long after the Job ended will not come (the node's exporter went
        # with it): as final as no series at all, not retried until Prometheus' retention drops the series
        waiting = outcome.reason in (Reason.NO_DATA, Reason.WAITING)
        if waiting and ended and now - ended > cfg.measure_give_up_seconds:
            outcome = Outcome(
                Reason.GAVE_UP,
                f"{outcome.message.removesuffix('; will retry')}; gave up {cfg.measure_give_up_seconds:.0f} s "
                "after the Job ended",
            )
        gpu_type, predicted = cand.gpu_type, cand.predicted_energy_joules
        actual = ran_on(pods, self._node_types())
        if actual is not None and actual != gpu_type:  # Kueue admitted it on another allowed flavor
            logger.info("AIJob %s/%s: placed on %s, ran on %s", namespace, name, gpu_type, actual)
            gpu_type, predicted = actual, dict(cand.estimates).get(actual)
        if outcome.reason.final:
            backoff.forget(uid)
            self.job_uids.pop(uid, None)
            decided[uid] = now  # if the write is lost, the AIJob is decided again after DECIDED_SECONDS
        else:
            delay = backoff.failed(uid, now)
            logger.info(
                "AIJob %s/%s: %s: %s (retry in %.0f s)",
                namespace,
                name,
                outcome.reason,
                outcome.message,
                delay,
            )
        await self._report(cand, outcome, gpu_type, predicted)

    def _unended_outcome(self, pod: PodRun, stuck: bool) -> Outcome:
        """A pod of the finished Job has not ended: ``WaitingForData`` while it may still (its node may come
        back, and its kubelet report the end), ``NoDataGaveUp`` past the give-up time."""
        give_up = self.cfg.measure_give_up_seconds
        if stuck:
            return Outcome(
                Reason.GAVE_UP,
                f"{_where(pod)} has not ended {give_up:.0f} s after the Job ended (its node lost?): the energy "
                "of its GPUs is unknown, and a number without it would under-count",
            )
        deleted = f"was deleted (grace period over {iso_time(pod.deleting_at)})" if pod.deleting_at else "is"
        return Outcome(
            Reason.WAITING,
            f"{_where(pod)} {deleted} but has not ended: its node does not confirm it (lost?); measured once "
            f"it ends, else NoDataGaveUp {give_up:.0f} s after the Job ended; will retry",
        )

    async def _job_deleted(self, cand: Candidate) -> None:
        """A final ``Measured=False`` (``JobDeleted``): the Job and, with it, its pods are gone, so which
        pods ran and when is unknown; and a run cut short would be no sample of the predicted energy."""
        now = time.time()
        if now - self.decided.get(cand.uid, -math.inf) < DECIDED_SECONDS:
            return  # decided (the index can lag the written status)
        self.decided[cand.uid] = now
        self.job_uids.pop(cand.uid, None)
        message = (
            f"the Job {cand.job_name} was deleted before it finished: its pods and their run window are "
            "unknown, and a run cut short is no measure of the predicted energy"
        )
        await self._report(cand, Outcome(Reason.JOB_DELETED, message), cand.gpu_type, None)

    async def _report(
        self, cand: Candidate, outcome: Outcome, gpu_type: str, predicted: float | None
    ) -> None:
        """Write the outcome into the AIJob's status; then the Event, the gauge, the ratio and a log line."""
        namespace, name = cand.namespace, cand.name
        # merged into the object as it is now (read back first): conditions written meanwhile are kept
        try:
            written = await asyncio.to_thread(_write_status, namespace, name, cand.uid, outcome, gpu_type)
        except kube.ApiException as exc:
            logger.warning(
                "AIJob %s/%s: writing the measurement failed: HTTP %s", namespace, name, exc.status
            )
            self.decided.pop(cand.uid, None)
            return
        if not written:
            return
        if outcome.measured:
            metrics = self.memo["state"].metrics
            if metrics is not None:
                metrics.set_measured(namespace, name, gpu_type, float(outcome.energy_joules or 0.0))
                if predicted and predicted > 0:
                    metrics.prediction_error_ratio.labels(gpu_type=gpu_type).observe(
                        outcome.energy_joules / predicted
                    )
            kopf.event(cand.ref, type="Normal", reason="Measured", message=outcome.message)
            logger.info("AIJob %s/%s: measured %s", namespace, name, outcome.message)
        elif outcome.reason is Reason.JOB_DELETED:
            # the placer posted the Warning Event JobDeleted when it failed the AIJob: not a second one
            logger.info("AIJob %s/%s: not measured: %s", namespace, name, outcome.message)
        elif outcome.reason.final:
            kopf.event(cand.ref, type="Warning", reason=outcome.reason.value, message=outcome.message[:1000])
            logger.warning(
                "AIJob %s/%s: no measurement: %s: %s", namespace, name, outcome.reason, outcome.message
            )


def _report_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the measurement loop stopped", exc_info=task.exception())


def _write_status(namespace: str, name: str, uid: str, outcome: Outcome, gpu_type: str) -> bool:
    """Merge the outcome into the current status of the AIJob ``uid``; False when there is nothing (new) to
    write, or that AIJob is gone (also when one of its name was created again since: not its outcome)."""
    try:
        current = kube.read_aijob(namespace, name)
    except kube.ApiException as exc:
        if exc.status == 404:
            return False  # deleted meanwhile
        raise
    if (current.get("metadata") or {}).get("uid") not in (None, "", uid):
        return False  # deleted and created again meanwhile: another AIJob, whose own run this is not
    status = current.get("status") or {}
    if status.get("measured"):
        return False
    conditions = list(status.get("conditions") or [])
    old = next((c for c in conditions if c.get("type") == CONDITION), None)
    message = outcome.message[:1000]
    if (
        not outcome.measured
        and old is not None
        and (old.get("reason"), old.get("message"))
        == (
            outcome.reason.value,
            message,
        )
    ):
        return False  # the same condition again: no write, no Event

    def build(conditions_now: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        update: dict[str, Any] = {
            "conditions": set_condition(conditions_now, CONDITION, outcome.measured, outcome.reason, message)
        }
        if outcome.measured:
            update["measured"] = outcome.status(gpu_type)
        return update

    rv = (current.get("metadata") or {}).get("resourceVersion")
    try:
        patch_status_merged(namespace, name, rv, conditions, build, uid)
    except kube.ApiException as exc:
        if exc.status == 404:
            return False  # deleted meanwhile
        raise
    return True


# ------------------------------------------------------------------------------------------ gauge


@kopf.on.startup()
def measure_startup(memo: kopf.Memo, **_: Any) -> None:
    cfg = _settings(memo)
    if cfg.prometheus_url:
        memo["measurer"] = Measurer(cfg, memo)
        logger.info("measured energy: reading %s from %s", ENERGY_METRIC, cfg.prometheus_url)


@kopf.on.event(GROUP, VERSION, PLURAL, when=_enabled)
async def measured_gauge(
    event: kopf.RawEvent,
    memo: kopf.Memo,
    measure_candidates: kopf.Index,
    measure_pods: kopf.Index,
    measure_jobs: kopf.Index,
    measure_nodes: kopf.Index,
    gpu_nodes: kopf.Index,
    **_: Any,
) -> None:
    """Keeps the measured gauge in step with status.measured, and starts the measurement loop."""
    measurer: Measurer | None = memo.get("measurer")
    if measurer is not None:
        measurer.start(measure_candidates, measure_pods, measure_jobs, measure_nodes, gpu_nodes)
    metrics = memo["state"].metrics
    obj = event.get("object") or {}
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if metrics is None or not name:
        return
    measured = (obj.get("status") or {}).get("measured")
    if event.get("type") == "DELETED" or not measured:
        metrics.forget_measured(namespace, name)
        if event.get("type") == "DELETED" and measurer is not None:
            measurer.decided.pop(meta.get("uid"), None)
            measurer.job_uids.pop(meta.get("uid"), None)
        return
    gpu_type = measured.get("gpuType") or _gpu_type(obj.get("status") or {}, meta)
    metrics.set_measured(namespace, name, gpu_type, float(measured.get("energyJoules") or 0.0))


@kopf.on.cleanup()
async def measure_cleanup(memo: kopf.Memo, **_: Any) -> None:
    measurer: Measurer | None = memo.get("measurer")
    if measurer is not None:
        await measurer.stop()
