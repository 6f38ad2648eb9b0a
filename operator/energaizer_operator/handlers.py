"""The kopf handler registry: every handler the operator has, in one place.

* indices: ``gpu_nodes`` (Nodes), ``gpu_pods`` (Pods holding GPUs), ``steered_jobs`` (the operator's
  Jobs, by owner uid), ``aijob_records`` (AIJobs, by uid);
* ``estimate_aijob``: on AIJob create / spec update -> ``status.estimates`` or ``Invalid``;
* ``mirror_job``: a steered Job's status -> the owner AIJob's phase;
* ``aijob_events``: forgets the metrics of deleted AIJobs, and tells the placer kopf is streaming;
* startup/cleanup: settings, metrics server, the placement loop (:mod:`energaizer_operator.placer`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from pydantic import ValidationError

from energaizer.errors import InvalidInputError
from energaizer_operator import ANNOTATION_GPU_TYPE, GROUP, PLURAL, VERSION, kube
from energaizer_operator.conditions import set_condition
from energaizer_operator.estimation import candidate_types, estimate_job
from energaizer_operator.inventory import compute_capacity, node_gpus, pod_gpus, steered_job
from energaizer_operator.metrics import Metrics
from energaizer_operator.models import AIJobSpec, dump
from energaizer_operator.placer import Placer
from energaizer_operator.records import aijob_record
from energaizer_operator.settings import OperatorSettings
from energaizer_operator.steering import check_template

logger = logging.getLogger("energaizer_operator")


def _cfg(memo: kopf.Memo) -> OperatorSettings:
    return memo["settings"]


# ------------------------------------------------------------------------------------- lifecycle


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    gpu_nodes: kopf.Index,
    gpu_pods: kopf.Index,
    steered_jobs: kopf.Index,
    aijob_records: kopf.Index,
    **_: Any,
) -> None:
    cfg: OperatorSettings = memo.get("settings") or OperatorSettings.from_env()
    memo["settings"] = cfg
    settings.posting.level = logging.INFO
    metrics = Metrics()
    memo["metrics"] = metrics
    if cfg.metrics_port:
        memo["metrics_server"] = metrics.serve(cfg.metrics_port)
    placer = Placer(cfg, metrics, nodes=gpu_nodes, pods=gpu_pods, jobs=steered_jobs, aijobs=aijob_records)
    memo["placer"] = placer  # started by the first AIJob event: kopf's event-posting context exists there
    logger.info("energaizer operator started: %s", cfg.model_dump())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    placer: Placer | None = memo.get("placer")
    if placer is not None:
        await placer.stop()
    server = memo.get("metrics_server")
    if server is not None:
        server.shutdown()


@kopf.on.probe(id="placer")
def placer_alive(memo: kopf.Memo, **_: Any) -> bool:
    placer: Placer | None = memo.get("placer")
    if placer is None or placer.failed:
        raise RuntimeError("the placement loop has stopped")
    return True


# ---------------------------------------------------------------------------------------- indices


@kopf.index("", "v1", "nodes")
def gpu_nodes(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    cfg = _cfg(memo)
    return node_gpus(
        body, product_label=cfg.gpu_product_label, gpu_resource=cfg.gpu_resource, mapping=cfg.product_map
    )


@kopf.index("", "v1", "pods")
def gpu_pods(body: kopf.Body, memo: kopf.Memo, **_: Any) -> Any:
    return pod_gpus(body, gpu_resource=_cfg(memo).gpu_resource)


@kopf.index("batch", "v1", "jobs", annotations={ANNOTATION_GPU_TYPE: kopf.PRESENT})
def steered_jobs(body: kopf.Body, **_: Any) -> Any:
    job = steered_job(body)
    return {job.owner_uid: job} if job is not None and job.owner_uid else None


@kopf.index(GROUP, VERSION, PLURAL)
def aijob_records(body: kopf.Body, uid: str, **_: Any) -> Any:
    return {uid: aijob_record(body)}


# ------------------------------------------------------------------------------------- estimation


def _describe(exc: Exception) -> tuple[str, str]:
    """(field, message) of a bad spec."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        field = ".".join(["spec", *loc]) if loc else "spec"
        if exc.title == "Workload":  # the estimator's own model: snake_case names of spec.workload
            field = ".".join(["spec.workload", *loc]) if loc else "spec.workload"
        return field, f"{field}: {err.get('msg', 'invalid value')}"
    if isinstance(exc, InvalidInputError):
        field = exc.field if exc.field.startswith("spec.") else f"spec.workload.{exc.field}"
        return field, str(exc) if exc.field.startswith("spec.") else f"spec.workload.{exc}"
    return "spec", str(exc)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def estimate_aijob(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    gpu_nodes: kopf.Index,
    **_: Any,
) -> None:
    cfg = _cfg(memo)
    metrics: Metrics = memo["metrics"]
    generation = meta.get("generation")
    conditions = list(status.get("conditions") or [])
    started = time.perf_counter()
    try:
        aijob = AIJobSpec.model_validate(dict(spec))
        if (aijob.placement.mode or cfg.default_mode) == "steer":
            check_template(aijob.template)
        present = compute_capacity([n for store in gpu_nodes.values() for n in store], [], []).types
        types = candidate_types(aijob, present)
        if not types:
            raise kopf.TemporaryError("no GPU nodes of a known GPU type in the cluster yet", delay=15)
        estimates = estimate_job(aijob, types, cfg.profile)
    except (ValidationError, InvalidInputError) as exc:
        _field, message = _describe(exc)
        patch.status["phase"] = "Invalid"
        patch.status["observedGeneration"] = generation
        patch.status["estimates"] = None
        patch.status["placement"] = None
        patch.status["conditions"] = set_condition(conditions, "Invalid", True, "InvalidSpec", message)
        kopf.warn(body, reason="InvalidSpec", message=message)
        metrics.forget(meta.get("namespace", ""), meta.get("name", ""))
        return
    metrics.estimation_seconds.observe(time.perf_counter() - started)
    wire = [dump(e) for e in estimates]
    feasible = [e for e in estimates if e.feasible]
    if feasible:
        best = min(feasible, key=lambda e: e.energy_joules)
        message = f"{len(feasible)}/{len(estimates)} GPU types feasible; least energy on {best.gpu_type}: "
        message += f"{best.energy_joules:.4g} J in {best.duration_seconds:.4g} s"
    else:
        message = "no feasible GPU type: " + "; ".join(f"{e.gpu_type}: {e.reason}" for e in estimates)
    conditions = set_condition(conditions, "Invalid", False, "ValidSpec", "")
    conditions = set_condition(conditions, "Estimated", True, "Estimated", message[:1000])
    patch.status["phase"] = "Estimated"
    patch.status["observedGeneration"] = generation
    patch.status["estimates"] = wire
    patch.status["conditions"] = conditions
    metrics.set_estimates(meta.get("namespace", ""), meta.get("name", ""), wire)
    kopf.info(body, reason="Estimated", message=message[:1000])


# ------------------------------------------------------------------------------------ Job mirror

FINAL = ("Succeeded", "Failed")


@kopf.on.event("batch", "v1", "jobs", annotations={ANNOTATION_GPU_TYPE: kopf.PRESENT})
def mirror_job(body: kopf.Body, event: kopf.RawEvent, aijob_records: kopf.Index, **_: Any) -> None:
    if event.get("type") == "DELETED":
        return
    job = steered_job(body)
    if job is None or job.owner_uid is None or job.phase == "Placed":
        return
    owner = next(iter(aijob_records.get(job.owner_uid, [])), None)
    if owner is None or owner.phase == job.phase or owner.phase in FINAL or owner.phase == "Invalid":
        return
    conditions = set_condition(
        owner.conditions, "Running", job.phase == "Running", job.phase, f"Job {job.name}"
    )
    kube.patch_aijob_status(owner.namespace, owner.name, {"phase": job.phase, "conditions": conditions})
    logger.info("AIJob %s: %s (mirrored from Job %s)", owner.key, job.phase, job.name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def aijob_events(event: kopf.RawEvent, name: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    memo["placer"].start()  # idempotent; kopf runs this only once its indices are populated
    if event.get("type") == "DELETED":
        memo["metrics"].forget(namespace, name)
