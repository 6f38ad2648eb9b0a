"""kopf handlers of measured energy (contract section 5): only active with ``ENERGAIZER_PROMETHEUS_URL``.

* indices ``measure_pods`` (every pod owned by a Job: its node and run window, by (namespace, Job)) and
  ``measure_jobs`` (the operator's Jobs: finished or not, by (namespace, name));
* ``measure_aijob``: a timer on each placed AIJob without ``status.measured``; once its Job has finished
  and its pods have ended, it queries Prometheus and writes ``status.measured`` and the ``Measured``
  condition (or only the condition, with the reason there is no number), an Event, the
  ``energaizer_measured_energy_joules`` gauge and one ``energaizer_prediction_error_ratio`` observation.
  Retryable outcomes (Prometheus down, data not scraped yet) back off per AIJob
  (``ENERGAIZER_MEASURE_INTERVAL_SECONDS`` doubling up to 10 minutes); nothing is lost across restarts,
  since an AIJob without ``status.measured`` is simply tried again;
* ``measured_gauge``: keeps the gauge in step with ``status.measured`` (after a restart too) and drops it
  with the AIJob.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from energaizer_operator import ANNOTATION_ENERGY, ANNOTATION_GPU_TYPE, GROUP, PLURAL, VERSION
from energaizer_operator.conditions import set_condition
from energaizer_operator.measured import (
    ENERGY_METRIC,
    Backoff,
    Outcome,
    PodRun,
    Reason,
    parse_matrix,
    parse_time,
    pod_run,
    pods_selector,
    ran,
    range_query,
    uuids_selector,
)
from energaizer_operator.promclient import PrometheusClient, PrometheusUnavailable
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.measured")

CONDITION = "Measured"
TIMER_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
DECIDED_SECONDS = 120.0


@dataclass(frozen=True)
class JobRun:
    namespace: str
    name: str
    finished: bool
    completed_at: float | None


def _settings(memo: kopf.Memo) -> OperatorSettings:
    cfg = memo.get("settings")
    if cfg is None:
        cfg = OperatorSettings.from_env()
        memo["settings"] = cfg
    return cfg


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
    return JobRun(str(meta.get("namespace") or ""), str(meta.get("name") or ""), bool(done), completed)


# ---------------------------------------------------------------------------------------- indices


@kopf.index("", "v1", "pods")
def measure_pods(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    run = pod_run(body, _settings(memo).gpu_resource)
    return {(run.namespace, run.job): run} if run.job else None


@kopf.index("batch", "v1", "jobs", annotations={ANNOTATION_GPU_TYPE: kopf.PRESENT})
def measure_jobs(body: kopf.Body, **_: Any) -> Any:
    run = job_run(body)
    return {(run.namespace, run.name): run}


# ------------------------------------------------------------------------------------------ timer


def _final(status: Mapping[str, Any]) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == CONDITION:
            try:
                return Reason(cond.get("reason")).final
            except ValueError:
                return False
    return False


def _wants_measurement(status: kopf.Status, memo: kopf.Memo, **_: Any) -> bool:
    return bool(
        _settings(memo).prometheus_url
        and (status.get("placement") or {}).get("jobName")
        and not status.get("measured")
        and not _final(status)
    )


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


async def measure(
    client: PrometheusClient, pods: list[PodRun], *, margin_seconds: float, now: float
) -> Outcome:
    """Query Prometheus for the job's pods and attribute (:func:`energaizer_operator.measured.attribute`)."""
    from energaizer_operator.measured import attribute

    runs = ran(pods)
    if not runs:
        return attribute(pods, [], [], margin_seconds=margin_seconds)
    start = min(p.started for p in runs) - margin_seconds  # type: ignore[type-var,operator]
    end = min(now, max(p.finished for p in runs) + margin_seconds)  # type: ignore[type-var,operator]
    expr, at = range_query(pods_selector(runs[0].namespace, [p.name for p in runs]), start, end)
    _kind, found = await client.query(expr, at)
    discovery = parse_matrix(found)
    uuids = {s.labels.get("UUID", "") for s in discovery} - {""}
    series = []
    if uuids:
        expr, at = range_query(uuids_selector(uuids), start, end)
        _kind, result = await client.query(expr, at)
        series = parse_matrix(result)
    return attribute(pods, discovery, series, margin_seconds=margin_seconds)


@kopf.on.startup()
def measure_startup(memo: kopf.Memo, **_: Any) -> None:
    """Objects shared by every AIJob's timer (kopf gives each object a shallow copy of this memo)."""
    cfg = _settings(memo)
    if cfg.prometheus_url:
        memo["prometheus_client"] = PrometheusClient(cfg.prometheus_url)
        logger.info("measured energy: reading %s from %s", ENERGY_METRIC, cfg.prometheus_url)
    memo["measure_backoff"] = Backoff(
        cfg.measure_interval_seconds, max(MAX_BACKOFF_SECONDS, cfg.measure_interval_seconds)
    )
    memo["measure_decided"] = {}


@kopf.timer(GROUP, VERSION, PLURAL, interval=TIMER_SECONDS, when=_wants_measurement)
async def measure_aijob(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    uid: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    measure_pods: kopf.Index,
    measure_jobs: kopf.Index,
    **_: Any,
) -> None:
    cfg = _settings(memo)
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    job_name = (status.get("placement") or {}).get("jobName")
    job = next(iter(measure_jobs.get((namespace, job_name), [])), None)
    if job is None or not job.finished:
        return
    pods: list[PodRun] = list(measure_pods.get((namespace, job_name), []))
    ended = job.completed_at or max((p.finished or 0.0 for p in pods), default=0.0)
    now = time.time()
    stuck = bool(ended) and now - ended > cfg.measure_give_up_seconds  # e.g. a pod of a lost node
    if not stuck and any(
        p.phase == "Running" or (p.started is not None and p.finished is None) for p in pods
    ):
        return  # the Job is finished but some pod is still being torn down
    backoff: Backoff = memo["measure_backoff"]
    decided: dict[str, float] = memo["measure_decided"]
    if now - decided.get(uid, -math.inf) < DECIDED_SECONDS or not backoff.due(uid, now):
        return  # decided (the timer can tick again before the patched body arrives), or backing off
    try:
        outcome = await measure(
            memo["prometheus_client"], pods, margin_seconds=cfg.measure_margin_seconds, now=now
        )
    except PrometheusUnavailable as exc:
        outcome = Outcome(Reason.UNAVAILABLE, str(exc)[:500])
    except Exception as exc:  # a bug must not stop the other AIJobs' measurement: log, condition, retry
        logger.exception("AIJob %s/%s: measurement failed", namespace, name)
        outcome = Outcome(Reason.UNAVAILABLE, f"measurement failed: {type(exc).__name__}: {exc}"[:500])
    if outcome.reason is Reason.NO_DATA and ended and now - ended > cfg.measure_give_up_seconds:
        outcome = Outcome(
            Reason.GAVE_UP,
            f"{outcome.message}; gave up {cfg.measure_give_up_seconds:.0f} s after the Job ended",
        )
    conditions = list(status.get("conditions") or [])
    gpu_type = _gpu_type(status, meta)
    if outcome.reason.final:
        decided[uid] = now  # if the patch is lost, the AIJob is decided again after DECIDED_SECONDS
    if outcome.measured:
        backoff.forget(uid)
        patch.status["measured"] = outcome.status(gpu_type)
        patch.status["conditions"] = set_condition(
            conditions, CONDITION, True, outcome.reason, outcome.message
        )
        metrics = memo.get("metrics")
        if metrics is not None:
            metrics.set_measured(namespace, name, gpu_type, float(outcome.energy_joules or 0.0))
            predicted = _predicted(status, meta)
            if predicted and predicted > 0:
                metrics.prediction_error_ratio.labels(gpu_type=gpu_type).observe(
                    outcome.energy_joules / predicted
                )
        kopf.info(body, reason="Measured", message=outcome.message)
        logger.info("AIJob %s/%s: measured %s", namespace, name, outcome.message)
        return
    if outcome.reason.final:
        backoff.forget(uid)
        kopf.warn(body, reason=outcome.reason.value, message=outcome.message[:1000])
    else:
        delay = backoff.failed(uid, now)
        logger.info(
            "AIJob %s/%s: %s: %s (retry in %.0f s)", namespace, name, outcome.reason, outcome.message, delay
        )
    old = next((c for c in conditions if c.get("type") == CONDITION), None)
    if old is None or old.get("reason") != outcome.reason.value or old.get("message") != outcome.message:
        patch.status["conditions"] = set_condition(
            conditions, CONDITION, False, outcome.reason, outcome.message[:1000]
        )


# ------------------------------------------------------------------------------------------ gauge


@kopf.on.event(GROUP, VERSION, PLURAL)
def measured_gauge(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    metrics = memo.get("metrics")
    obj = event.get("object") or {}
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if metrics is None or not name:
        return
    measured = (obj.get("status") or {}).get("measured")
    if event.get("type") == "DELETED" or not measured:
        metrics.forget_measured(namespace, name)
        if event.get("type") == "DELETED":
            memo.get("measure_decided", {}).pop(meta.get("uid"), None)
        return
    gpu_type = measured.get("gpuType") or _gpu_type(obj.get("status") or {}, meta)
    metrics.set_measured(namespace, name, gpu_type, float(measured.get("energyJoules") or 0.0))


@kopf.on.cleanup()
async def close_prometheus_client(memo: kopf.Memo, **_: Any) -> None:
    client: PrometheusClient | None = memo.get("prometheus_client")
    if client is not None:
        await client.close()
