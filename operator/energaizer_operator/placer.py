"""The batching loop: every window, place the pending AIJobs jointly and steer them.

It reads only kopf's indices (nodes, pods, steered Jobs, AIJobs); in-memory state is limited to
decisions whose status patch has not come back through the watch yet (so a job is never decided
twice) and GPUs promised to Jobs not yet visible (so a batch never reuses them). After a restart
that state is rebuilt from the cluster: a Job that already exists for an AIJob is adopted, never
created again (deterministic name; 409 Conflict -> read it back).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from energaizer_operator import kube
from energaizer_operator.batch import Decision, decide
from energaizer_operator.conditions import set_condition
from energaizer_operator.display import readable_placement
from energaizer_operator.inventory import Capacity, NodeGPUs, PodGPUs, SteeredJob, compute_capacity
from energaizer_operator.metrics import Metrics
from energaizer_operator.powercap import (
    JobPowerAdvice,
    advise_spec,
    annotate_job,
    placement_fields,
    power_annotations,
)
from energaizer_operator.records import AIJobRecord
from energaizer_operator.settings import OperatorSettings
from energaizer_operator.steering import build_job, contract_annotations, owned_by

logger = logging.getLogger("energaizer_operator.placer")

WAITING = ("Estimated", "Unschedulable")
PARALLEL_CALLS = 8
MAX_WAIT_TICKS = 5


@dataclass
class InFlight:
    phase_seen: str | None  # the AIJob phase when decided; the entry ends when the phase moves on
    generation: int | None
    gpu_type: str | None
    gpus: int
    steer: bool


def _values(index: Mapping[Any, Iterable[Any]]) -> list[Any]:
    return [value for store in list(index.values()) for value in store]


class Placer:
    def __init__(
        self,
        settings: OperatorSettings,
        metrics: Metrics,
        *,
        nodes: Mapping[Any, Iterable[NodeGPUs]],
        pods: Mapping[Any, Iterable[PodGPUs]],
        jobs: Mapping[Any, Iterable[SteeredJob]],
        aijobs: Mapping[Any, Iterable[AIJobRecord]],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.nodes, self.pods, self.jobs, self.aijobs = nodes, pods, jobs, aijobs
        self._task: asyncio.Task[None] | None = None
        self.inflight: dict[str, InFlight] = {}
        self._last_fingerprint: tuple[Any, ...] | None = None
        self._reported_unknown: set[str] = set()
        self._semaphore = asyncio.Semaphore(PARALLEL_CALLS)
        self._previous_fresh: set[str] = set()
        self._waited_ticks = 0

    def start(self) -> None:
        """Start the loop (once). Call it from a kopf handler: events are posted from its context."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="energaizer-placer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def failed(self) -> bool:
        return self._task is not None and self._task.done()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.batch_window_seconds)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("placement batch failed; retrying in the next window")

    def capacity(self, records: Mapping[str, AIJobRecord], jobs: Mapping[str, SteeredJob]) -> Capacity:
        for uid, entry in list(self.inflight.items()):
            rec = records.get(uid)
            changed = rec is None or rec.phase != entry.phase_seen or rec.generation != entry.generation
            if changed and (rec is None or not entry.steer or uid in jobs or entry.gpu_type is None):
                del self.inflight[uid]
        reserved: Counter[str] = Counter()
        for uid, entry in self.inflight.items():
            if entry.steer and entry.gpu_type and uid not in jobs:
                reserved[entry.gpu_type] += entry.gpus
        return compute_capacity(_values(self.nodes), _values(self.pods), jobs.values(), reserved)

    async def tick(self) -> list[Decision]:
        records = {r.uid: r for r in _values(self.aijobs)}
        jobs = {j.owner_uid: j for j in _values(self.jobs) if j.owner_uid}
        capacity = self.capacity(records, jobs)
        self.metrics.set_inventory(capacity.free, capacity.unknown_products)
        self.metrics.set_phase_counts(Counter(r.phase or "Pending" for r in records.values()))
        for product, reason in capacity.unknown_products.items():
            if product not in self._reported_unknown:
                self._reported_unknown.add(product)
                logger.warning("ignoring GPU nodes with product %r: %s", product, reason)

        waiting = [
            r for r in records.values() if r.phase in WAITING and r.up_to_date and r.uid not in self.inflight
        ]
        adopt = [r for r in waiting if r.uid in jobs]
        waiting = [r for r in waiting if r.uid not in jobs]
        fresh_uids = {r.uid for r in waiting if r.phase == "Estimated"}
        fingerprint = capacity.fingerprint()
        if adopt:
            await asyncio.gather(*(self._adopt(r, jobs[r.uid]) for r in adopt))
        if not waiting or (not fresh_uids and fingerprint == self._last_fingerprint):
            return []
        # A burst is placed jointly: wait while new jobs keep arriving, for at most MAX_WAIT_TICKS windows.
        arriving = bool(fresh_uids - self._previous_fresh)
        self._previous_fresh = fresh_uids
        self._waited_ticks = 0 if not arriving else self._waited_ticks + 1
        if arriving and self._waited_ticks < MAX_WAIT_TICKS:
            return []
        self._waited_ticks = 0
        self._last_fingerprint = fingerprint
        pending = [r.pending_job(self.settings.default_objective) for r in waiting]
        decisions, result = await asyncio.to_thread(decide, pending, capacity)
        logger.info(
            "placement batch: %d jobs, %d placed by %s (optimal=%s), total objective %.6g",
            len(pending),
            result.placed,
            result.solver,
            result.optimal,
            result.objective,
        )
        by_key = {r.key: r for r in waiting}
        tasks = []
        for decision in decisions:
            rec = by_key[decision.job.key]
            if decision.gpu_type is None:
                if rec.phase == "Unschedulable" and _condition_message(rec, "Placed") == decision.reason:
                    continue  # nothing new to say
                steer = False
            else:
                steer = rec.mode(self.settings.default_mode) == "steer"
            self.inflight[rec.uid] = InFlight(
                rec.phase, rec.generation, decision.gpu_type, decision.job.demand, steer
            )
            tasks.append(self._apply(rec, decision, capacity, steer))
        await asyncio.gather(*tasks)
        return decisions

    async def _apply(self, rec: AIJobRecord, decision: Decision, capacity: Capacity, steer: bool) -> None:
        async with self._semaphore:
            try:
                if decision.gpu_type is None:
                    await self._unschedulable(rec, decision.reason)
                else:
                    await self._place(rec, decision, capacity, steer)
            except Exception:
                self.inflight.pop(rec.uid, None)
                logger.exception("could not apply the placement of %s; retrying", rec.key)

    async def _unschedulable(self, rec: AIJobRecord, reason: str) -> None:
        status = {
            "phase": "Unschedulable",
            "placement": None,
            "conditions": set_condition(rec.conditions, "Placed", False, "Unschedulable", reason),
        }
        await asyncio.to_thread(kube.patch_aijob_status, rec.namespace, rec.name, status)
        self.metrics.set_placement(rec.namespace, rec.name, None, None)
        kopf.warn(rec.ref, reason="Unschedulable", message=reason[:1000])

    async def _place(self, rec: AIJobRecord, decision: Decision, capacity: Capacity, steer: bool) -> None:
        gpu_type = decision.gpu_type
        assert gpu_type is not None
        energy, duration, savings = (
            decision.predicted_energy_joules,
            decision.predicted_duration_seconds,
            decision.savings_joules,
        )
        job_name: str | None = None
        advice = await asyncio.to_thread(advise_spec, rec.spec, gpu_type, self.settings.profile)
        if steer:
            resources = rec.spec.get("resources") or {}
            body = build_job(
                name=rec.name,
                namespace=rec.namespace,
                template=rec.spec.get("template") or {},
                replicas=int(resources.get("replicas") or 1),
                gpus_per_replica=int(resources.get("gpusPerReplica") or 1),
                gpu_type=gpu_type,
                products=capacity.products.get(gpu_type, []),
                product_label=self.settings.gpu_product_label,
                gpu_resource=self.settings.gpu_resource,
                energy_joules=energy,
                duration_seconds=duration,
            )
            annotate_job(body, advice)
            kopf.adopt(body, owner=rec.ref)
            try:
                await asyncio.to_thread(kube.create_job, rec.namespace, body)
            except kube.ApiException as exc:
                if exc.status != 409:
                    raise
                existing = await asyncio.to_thread(kube.read_job, rec.namespace, rec.name)
                if not owned_by(existing, rec.uid):
                    await self._conflict(rec)
                    return
                annotations = (existing.get("metadata") or {}).get("annotations") or {}
                if annotations.get("energaizer.io/gpu-type", gpu_type) != gpu_type:
                    gpu_type = annotations["energaizer.io/gpu-type"]
                    advice = await asyncio.to_thread(advise_spec, rec.spec, gpu_type, self.settings.profile)
                est = rec.estimates.get(gpu_type)
                if est is not None:
                    energy, duration = est.energy_joules, est.duration_seconds
                logger.info("adopted the existing Job %s/%s", rec.namespace, rec.name)
            job_name = rec.name
        await self._record_placement(rec, gpu_type, job_name, energy, duration, savings, advice)

    async def _adopt(self, rec: AIJobRecord, job: SteeredJob) -> None:
        """The AIJob's Job exists (an earlier run created it): record it instead of placing again."""
        est = rec.estimates.get(job.gpu_type)
        energy = est.energy_joules if est else (job.predicted_energy_joules or 0.0)
        duration = est.duration_seconds if est else (job.predicted_duration_seconds or 0.0)
        worst = max((e.energy_joules for e in rec.estimates.values() if e.feasible), default=energy)
        self.inflight[rec.uid] = InFlight(rec.phase, rec.generation, job.gpu_type, job.gpus, False)
        async with self._semaphore:
            try:
                advice = await asyncio.to_thread(advise_spec, rec.spec, job.gpu_type, self.settings.profile)
                await self._record_placement(
                    rec, job.gpu_type, job.name, energy, duration, max(0.0, worst - energy), advice
                )
            except Exception:
                self.inflight.pop(rec.uid, None)
                logger.exception("could not record the existing Job of %s; retrying", rec.key)

    async def _record_placement(
        self,
        rec: AIJobRecord,
        gpu_type: str,
        job_name: str | None,
        energy: float,
        duration: float,
        savings: float,
        advice: JobPowerAdvice | None = None,
    ) -> None:
        annotations = {**contract_annotations(gpu_type, energy, duration), **power_annotations(advice)}
        await asyncio.to_thread(
            kube.patch_aijob, rec.namespace, rec.name, {"metadata": {"annotations": annotations}}
        )
        placement = {"gpuType": gpu_type, "predictedEnergyJoules": energy, "savingsJoules": savings}
        placement.update(readable_placement(energy, duration, savings))
        if job_name:
            placement["jobName"] = job_name
        placement.update(placement_fields(advice))
        where = f"Job {job_name}" if job_name else "recommendation only (annotate mode)"
        message = f"{gpu_type}: predicted {energy:.4g} J, {duration:.4g} s, saves {savings:.4g} J; {where}"
        status = {
            "phase": "Placed",
            "placement": placement,
            "conditions": set_condition(rec.conditions, "Placed", True, "Placed", message),
        }
        await asyncio.to_thread(kube.patch_aijob_status, rec.namespace, rec.name, status)
        self.metrics.set_placement(rec.namespace, rec.name, gpu_type, savings, energy)
        kopf.info(rec.ref, reason="Placed", message=message)

    async def _conflict(self, rec: AIJobRecord) -> None:
        message = f"a Job named {rec.name} exists and is not owned by this AIJob"
        status = {
            "phase": "Failed",
            "conditions": set_condition(rec.conditions, "Placed", False, "JobNameConflict", message),
        }
        await asyncio.to_thread(kube.patch_aijob_status, rec.namespace, rec.name, status)
        kopf.warn(rec.ref, reason="JobNameConflict", message=message)


def _condition_message(rec: AIJobRecord, type_: str) -> str | None:
    for cond in rec.conditions:
        if cond.get("type") == type_:
            return str(cond.get("message", ""))
    return None
