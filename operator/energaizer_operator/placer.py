"""The batching loop: place the pending AIJobs jointly and steer them.

It reads only kopf's indices (nodes, pods, steered Jobs, AIJobs). When to decide is
:func:`energaizer_operator.batch.batch_due` on the placer's injectable ``clock`` (burst-aware: not
while AIJobs are still being estimated or keep arriving); what to decide is
:func:`energaizer_operator.batch.decide` on the pending jobs and the free capacity of that moment.
Every batch is logged as one ``placement batch {json}`` line (jobs, free GPUs, assignment, solver,
objective) so that it can be audited against the optimum of its moment.

In-memory state is limited to decisions whose status patch has not come back through the watch
yet (so a job is never decided twice) and GPUs promised to Jobs not yet visible (so a batch never
reuses them). After a restart that state is rebuilt from the cluster: a Job that already exists for
an AIJob is adopted, never created again (deterministic name; 409 Conflict -> read it back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from energaizer.placement import FleetMode
from energaizer_operator import kube
from energaizer_operator.batch import BatchTiming, Decision, FleetSettings, batch_due, decide
from energaizer_operator.constants import ANNOTATION_GPU_TYPE, KUEUE_QUEUE_LABEL
from energaizer_operator.display import readable_placement
from energaizer_operator.gate import ANNOTATION_GPU_TYPES, DEFAULT_ENERGY_SLACK, energy_affinity, within_slack
from energaizer_operator.inventory import Capacity, SteeredJob, aijob_owner_uid, compute_capacity
from energaizer_operator.loops import IndexLoop
from energaizer_operator.models import Phase
from energaizer_operator.powercap import (
    JobPowerAdvice,
    advise_spec,
    annotate_job,
    placement_fields,
    power_annotations,
)
from energaizer_operator.records import AIJobRecord
from energaizer_operator.reporting import Condition, Event, report
from energaizer_operator.steering import build_job, contract_annotations, owned_by

logger = logging.getLogger("energaizer_operator.placer")

WAITING = (Phase.ESTIMATED, Phase.UNSCHEDULABLE)
PARALLEL_CALLS = 8
# a Job the API has and the Job index has not shown (its watch lags; Recheck): read again after this long,
# the wait doubling up to the most
JOB_RECHECK_FIRST_SECONDS = 1.0
JOB_RECHECK_MOST_SECONDS = 30.0


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Held:
    """An AIJob that waits for a preferred GPU type: decide again when the capacity changes or its
    wait ends (``wake_at``, on the placer's clock)."""

    fingerprint: tuple[Any, ...]
    wake_at: float


@dataclass
class InFlight:
    phase_seen: Phase | None  # the AIJob phase when decided; the entry ends when the phase moves on
    generation: int | None
    resource_version: str | None
    gpu_type: str | None
    gpus: int
    steer: bool


@dataclass
class Recheck:
    """When to read again from the API a Job that the API has and the Job index has not shown (its watch
    lags): the first read ``JOB_RECHECK_FIRST_SECONDS`` after it was found, the wait doubling up to
    ``JOB_RECHECK_MOST_SECONDS`` (on the placer's clock), until the index shows it or a read finds it gone."""

    check_at: float
    wait_seconds: float  # between two reads

    @classmethod
    def after(cls, now: float) -> Recheck:
        return cls(now + JOB_RECHECK_FIRST_SECONDS, JOB_RECHECK_FIRST_SECONDS)

    def due(self, now: float) -> bool:
        """Whether a read is due at ``now``; if it is, the next one is due after the doubled wait."""
        if now < self.check_at:
            return False
        self.wait_seconds = min(2 * self.wait_seconds, JOB_RECHECK_MOST_SECONDS)
        self.check_at = now + self.wait_seconds
        return True


@dataclass
class NameTaken:
    """A steered AIJob whose Job create found the name taken by the Job of another AIJob (a deleted one of the
    same name: the garbage collector deletes it) that the Job index has not shown (its watch lags): it waits
    (``JobNameInUse``) until a read of that name (``recheck``) finds it gone, or the index shows that Job
    (then the index holds it, as for any Job name in use)."""

    job_uid: str  # the Job's own uid
    recheck: Recheck


def _own_job_exists(namespace: str, name: str, owner_uid: str) -> bool:
    """The Job ``name`` exists and is the AIJob ``owner_uid``'s: one of that name that it does not own (its
    own deleted, and the name taken again) is not its Job."""
    try:
        job = kube.read_job(namespace, name)
    except kube.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return owned_by(job, owner_uid)


class Placer(IndexLoop):
    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.timing = BatchTiming(self.settings.batch_window_seconds, self.settings.max_batch_delay_seconds)
        self.inflight: dict[str, InFlight] = {}
        self._last_fingerprint: tuple[Any, ...] | None = None
        self._reported_unknown: set[str] = set()
        self._semaphore = asyncio.Semaphore(PARALLEL_CALLS)
        self._first_seen: dict[str, float] = {}  # uid -> when this process first saw the AIJob
        self._ready_since: dict[str, float] = {}  # uid -> when it became Estimated (ready to place)
        self._mirrored: dict[str, tuple[str | None, str]] = {}  # uid -> (resourceVersion, Job phase) written
        self._name_held: dict[str, str | None] = {}  # uid -> resourceVersion its JobNameInUse was written on
        self._name_taken: dict[str, NameTaken] = {}  # uid -> its name taken by a Job the index has not shown
        self._names_waiting: set[str] = set()  # uids held for their Job's name at the last tick
        self._job_phase: dict[str, str] = {}  # uid -> the last phase seen of its Job (a Job deleted: its end)
        self._unshown: dict[str, Recheck] = {}  # uid -> its Job: the API has it, the index has not shown it
        self._waiting_since: dict[str, float] = {}  # uid -> when it began waiting for a placement
        self._held: dict[str, Held] = {}  # uid -> waiting for a preferred type (maxWaitSeconds)
        self.fleet = FleetSettings(
            FleetMode(self.settings.fleet_mode), self.settings.fleet_idle_timeout_seconds
        )
        self.batches = 0

    def interval(self) -> float:
        return min(self.settings.batch_window_seconds, 0.5)

    def capacity(self, records: Mapping[str, AIJobRecord], jobs: Mapping[str, SteeredJob]) -> Capacity:
        for uid, entry in list(self.inflight.items()):
            rec = records.get(uid)
            changed = rec is None or rec.phase != entry.phase_seen or rec.generation != entry.generation
            if entry.gpu_type is None and rec is not None:
                changed = changed or rec.resource_version != entry.resource_version
            if changed and (rec is None or not entry.steer or uid in jobs or entry.gpu_type is None):
                del self.inflight[uid]
        reserved: Counter[str] = Counter()
        for uid, entry in self.inflight.items():
            if entry.steer and entry.gpu_type and uid not in jobs:
                reserved[entry.gpu_type] += entry.gpus
        return compute_capacity(
            self.indices.live(self.indices.nodes),
            [*self.indices.live(self.indices.pods), *self.indices.others.pods],
            jobs.values(),
            reserved,
        )

    def _track(self, records: Mapping[str, AIJobRecord], now: float) -> None:
        for uid in set(self._first_seen) - set(records):
            del self._first_seen[uid]
        for uid in records:
            self._first_seen.setdefault(uid, now)
        estimated = {u for u, r in records.items() if r.phase == Phase.ESTIMATED and r.up_to_date}
        for uid in set(self._ready_since) - estimated:
            del self._ready_since[uid]
        for uid in estimated:
            self._ready_since.setdefault(uid, now)
        waiting = {u for u, r in records.items() if r.phase in WAITING and r.up_to_date}
        for uid in set(self._waiting_since) - waiting:
            del self._waiting_since[uid]
        for uid in set(self._held) - waiting:
            del self._held[uid]
        for uid in waiting:
            self._waiting_since.setdefault(uid, now)

    def _observe(self) -> tuple[dict[str, AIJobRecord], dict[str, SteeredJob], Capacity]:
        records = {r.uid: r for r in self.indices.live(self.indices.aijobs)}
        jobs = {j.owner_uid: j for j in self.indices.live(self.indices.jobs) if j.owner_uid}
        capacity = self.capacity(records, jobs)
        self.metrics.set_inventory(capacity.free, capacity.unknown_products)
        self.metrics.set_phase_counts(Counter(str(r.phase or Phase.PENDING) for r in records.values()))
        return records, jobs, capacity

    def observe(self) -> None:
        """A standby: the inventory and phase-count metrics, as the leader sees them."""
        self._observe()

    async def tick(self) -> list[Decision]:
        now = self.clock()
        records, jobs, capacity = self._observe()
        self._track(records, now)
        for product, reason in capacity.unknown_products.items():
            if product not in self._reported_unknown:
                self._reported_unknown.add(product)
                logger.warning("ignoring GPU nodes with product %r: %s", product, reason)

        waiting = [
            r
            for r in records.values()
            if r.phase in WAITING and r.up_to_date and r.spec is not None and r.uid not in self.inflight
        ]
        adopt = [r for r in waiting if r.uid in jobs]
        waiting = [r for r in waiting if r.uid not in jobs]
        if adopt:
            await asyncio.gather(*(self._adopt(r, jobs[r.uid]) for r in adopt))
        await self._mirror(records, jobs, now)
        waiting = await self._hold_names_in_use(waiting, records, jobs, now)
        fresh = [r for r in waiting if r.phase == Phase.ESTIMATED and r.uid not in self._held]
        backlog = [r for r in records.values() if r.needs_estimate and r.spec is not None]
        arrivals = [self._first_seen[r.uid] for r in (*fresh, *backlog)]
        fingerprint = capacity.fingerprint()
        held = [self._held[r.uid] for r in waiting if r.uid in self._held]
        wake = any(now >= h.wake_at for h in held)
        moved = any(h.fingerprint != fingerprint for h in held) and not backlog
        if fresh:
            due = batch_due(
                ready_since=[self._ready_since[r.uid] for r in fresh],
                last_arrival=max(arrivals, default=None),
                backlog=len(backlog),
                now=now,
                timing=self.timing,
            )
        else:  # only Unschedulable ones: retry when the capacity changed and no burst is in progress
            due = bool(waiting) and fingerprint != self._last_fingerprint and not backlog
        if not (due or wake or moved) or not self.indices.others.ready:
            return []  # (not ready: the first list of other namespaces' pods is not in yet, other_pods.py)
        self._last_fingerprint = fingerprint
        pending = [
            r.pending_job(
                self.settings.default_objective,
                self.settings.max_wait_seconds,
                now - self._waiting_since[r.uid],
            )
            for r in waiting
        ]
        decisions, result = await asyncio.to_thread(decide, pending, capacity, fleet=self.fleet)
        self.batches += 1
        self._log_batch(decisions, result, capacity, len(backlog), now)
        by_key = {r.key: r for r in waiting}
        tasks = []
        for decision in decisions:
            rec = by_key[decision.job.key]
            if decision.waiting:
                self._held[rec.uid] = Held(fingerprint, now + decision.wait_left_seconds)
                if (
                    rec.condition_message("Placed") is not None
                    and rec.condition_reason("Placed") == "Waiting"
                ):
                    continue  # said already
                self.inflight[rec.uid] = InFlight(
                    rec.phase, rec.generation, rec.resource_version, None, decision.job.demand, False
                )
                tasks.append(self._apply(rec, decision, capacity, False))
                continue
            self._held.pop(rec.uid, None)
            if decision.gpu_type is None:
                if rec.phase == Phase.UNSCHEDULABLE and rec.condition_message("Placed") == decision.reason:
                    continue  # nothing new to say
                steer = False
            else:
                steer = rec.mode(self.settings.default_mode) == "steer"
            self.inflight[rec.uid] = InFlight(
                rec.phase, rec.generation, rec.resource_version, decision.gpu_type, decision.job.demand, steer
            )
            tasks.append(self._apply(rec, decision, capacity, steer))
        await asyncio.gather(*tasks)
        return decisions

    async def _hold_names_in_use(
        self,
        waiting: list[AIJobRecord],
        records: Mapping[str, AIJobRecord],
        jobs: Mapping[str, SteeredJob],
        now: float,
    ) -> list[AIJobRecord]:
        """``waiting`` less the steered AIJobs whose Job name is still taken by the Job of a deleted AIJob
        of the same name (deleted and re-created at once: the garbage collector has not deleted the old
        Job yet): the index shows it, or a Job create found it (:class:`NameTaken`). Creating the Job would
        conflict with it; held, the AIJob says so once (``Placed=False``, reason ``JobNameInUse``, an
        Event) and is placed when the old Job is gone."""
        taken = {(j.namespace, j.name): j for uid, j in jobs.items() if uid not in records}
        shown = {j.uid for j in jobs.values()}
        for uid, entry in list(self._name_taken.items()):
            rec = records.get(uid)
            if rec is None or rec.phase not in WAITING or (entry.job_uid and entry.job_uid in shown):
                del self._name_taken[uid]  # (shown: the index holds it from now on, while it has that Job)
        out = []
        writes = []
        held: set[str] = set()
        for rec in waiting:
            entry = self._name_taken.get(rec.uid)
            in_index = (rec.namespace, rec.name) in taken
            if not (in_index or entry) or rec.mode(self.settings.default_mode) != "steer":
                out.append(rec)
                continue
            held.add(rec.uid)
            if entry is not None and not in_index and entry.recheck.due(now):
                writes.append(self._check_name(rec))
            if rec.condition_reason("Placed") == "JobNameInUse" or self._name_held.get(rec.uid) == (
                rec.resource_version
            ):
                continue  # said already (or being said)
            self._name_held[rec.uid] = rec.resource_version
            message = (
                f"the Job {rec.name} of a deleted AIJob of this name is not deleted yet; "
                "this AIJob is placed once it is gone"
            )
            writes.append(self._say_name_in_use(rec, message))
        if self._names_waiting - held:
            # a name freed: decide again, even if the free GPUs are as at the last batch (an Unschedulable
            # AIJob is otherwise decided again only when they change)
            self._last_fingerprint = None
        self._names_waiting = held
        for uid in set(self._name_held) - held:
            del self._name_held[uid]
        await asyncio.gather(*writes)
        return out

    async def _check_name(self, rec: AIJobRecord) -> None:
        """Read the Job name a :class:`NameTaken` AIJob waits for: gone (or no longer another AIJob's Job),
        the AIJob is placed at the next batch."""
        async with self._semaphore:
            try:
                job = await asyncio.to_thread(kube.read_job, rec.namespace, rec.name)
            except kube.ApiException as exc:
                if exc.status != 404:
                    kube.log_failure(
                        logger, exc, "could not read the Job %s/%s; retrying", rec.namespace, rec.name
                    )
                    return
                job = {}
            except Exception as exc:
                kube.log_failure(
                    logger, exc, "could not read the Job %s/%s; retrying", rec.namespace, rec.name
                )
                return
        owner = aijob_owner_uid(job.get("metadata") or {})
        if owner and owner != rec.uid:
            return  # still the deleted AIJob's Job (or another's)
        if self._name_taken.pop(rec.uid, None) is not None:
            logger.info("AIJob %s: the Job %s of a deleted AIJob of this name is gone", rec.key, rec.name)

    async def _say_name_in_use(self, rec: AIJobRecord, message: str) -> None:
        async with self._semaphore:
            try:
                await report(
                    rec,
                    None,
                    Condition("Placed", False, "JobNameInUse", message),
                    Event("JobNameInUse", message),
                )
            except Exception as exc:
                self._name_held.pop(rec.uid, None)
                kube.log_failure(logger, exc, "could not report the Job name in use of %s; retrying", rec.key)

    async def _mirror(
        self, records: Mapping[str, AIJobRecord], jobs: Mapping[str, SteeredJob], now: float
    ) -> None:
        """A steered Job's state -> its AIJob's phase (Running, Succeeded, Failed); level-triggered. A
        Running AIJob whose Job is suspended again (Kueue preempted or evicted it, or its Workload was
        deleted: the Job waits to be admitted again) goes back to Placed. A Job gone before its end was
        mirrored (deleted by hand, or by a TTL) fails its AIJob (:meth:`_lost`).

        A Placed/Running AIJob whose Job the index does not show is read from the API once per AIJob
        version; while the API has that Job (the Job watch lags), it is read again (:class:`Recheck`) until
        the index shows it or it is gone: a Job deleted before the index ever showed it would otherwise
        leave its AIJob Placed (its GPUs reserved) until the AIJob changed. Once the index shows the Job,
        its leaving the index is checked again, also on the same AIJob version."""
        writes = []
        for uid, job in jobs.items():
            self._job_phase[uid] = job.phase
            if self._unshown.pop(uid, None) is not None:
                logger.debug("the Job index shows the Job %s/%s now: no longer read", job.namespace, job.name)
            written = self._mirrored.get(uid)
            if written is not None and written[1] == "lost":
                del self._mirrored[uid]  # read while the index did not show it: read again if it leaves it
            rec = records.get(uid)
            if rec is None or uid in self.inflight:
                continue
            requeued = job.phase == Phase.PLACED and job.suspended and rec.phase == Phase.RUNNING
            if job.phase == Phase.PLACED and not requeued:
                continue
            if rec.phase not in (Phase.PLACED, Phase.RUNNING) or rec.phase == job.phase:
                continue
            seen = (rec.resource_version, job.phase)
            if self._mirrored.get(uid) == seen:
                continue  # written; waiting for the watch to bring it back
            self._mirrored[uid] = seen
            if requeued:
                message = (
                    f"Job {job.name} is suspended (preempted or evicted by Kueue): it waits for admission"
                )
                condition = Condition("Running", False, "Suspended", message)
            else:
                condition = Condition("Running", job.phase == Phase.RUNNING, job.phase, f"Job {job.name}")
            writes.append(self._write_mirror(rec, Phase(job.phase), condition))
        for uid, rec in records.items():
            if uid in jobs or not rec.placed_job_name or not rec.up_to_date:
                continue  # (a spec edit re-estimates it: without its Job it is placed again)
            if rec.phase not in (Phase.PLACED, Phase.RUNNING):
                continue
            entry = self.inflight.get(uid)
            if entry is not None and not (entry.steer and rec.phase != entry.phase_seen):
                continue  # being placed; (a Job created, then deleted before the watch showed it: read)
            written = self._mirrored.get(uid)
            if written is not None and written[0] == rec.resource_version:
                recheck = self._unshown.get(uid) if written[1] == "lost" else None
                if recheck is None or not recheck.due(now):
                    # a write built on this version is in flight, or was answered for it; a Job the API had
                    # is read again when its recheck is due
                    continue
            self._mirrored[uid] = (rec.resource_version, "lost")
            writes.append(self._lost(rec, self._job_phase.get(uid)))
        for uid in set(self._unshown):
            rec = records.get(uid)
            if rec is None or rec.phase not in (Phase.PLACED, Phase.RUNNING) or not rec.placed_job_name:
                del self._unshown[uid]
        for uid in set(self._mirrored) - set(records):
            del self._mirrored[uid]
        for uid in set(self._job_phase) - set(records):
            del self._job_phase[uid]
        await asyncio.gather(*writes)

    async def _lost(self, rec: AIJobRecord, last_phase: str | None) -> None:
        """The AIJob is Placed or Running and its Job is not in the index: once the API confirms it is gone
        (404, or a Job of that name that this AIJob does not own: its own was deleted and the name taken
        again), the AIJob takes the end the Job was last seen in (a TTL deleted it before the mirror wrote
        it), else it fails with ``JobDeleted``. Never created again: a Job deleted by hand is often a
        cancelled one, and running it again would cost its energy twice. A Job the API still has (the
        watch is late) is read again later (:class:`Recheck`, from :meth:`_mirror`)."""
        name = rec.placed_job_name
        assert name is not None
        async with self._semaphore:
            try:
                if await asyncio.to_thread(_own_job_exists, rec.namespace, name, rec.uid):
                    # the watch is late (or the Job lost its annotation): nothing to say; read it again
                    if rec.uid not in self._unshown:
                        self._unshown[rec.uid] = Recheck.after(self.clock())
                        logger.debug(
                            "AIJob %s: the Job index has not shown its Job %s, which exists; read again until"
                            " it does",
                            rec.key,
                            name,
                        )
                    return
                self._unshown.pop(rec.uid, None)
                self.inflight.pop(rec.uid, None)  # its GPUs are no longer promised to a Job on its way
                if last_phase in (Phase.SUCCEEDED, Phase.FAILED):
                    phase = Phase(last_phase)
                    condition = Condition("Running", False, last_phase, f"Job {name} (deleted since)")
                    event = None
                else:
                    phase = Phase.FAILED
                    message = f"the Job {name} was deleted before it finished; its outcome is unknown"
                    condition = Condition("Running", False, "JobDeleted", message)
                    event = Event("JobDeleted", message, warning=True)
                await report(rec, phase, condition, event)
                logger.info("AIJob %s: %s (its Job %s is gone)", rec.key, phase, name)
            except Exception as exc:
                self._mirrored.pop(rec.uid, None)
                kube.log_failure(logger, exc, "could not report the deleted Job of %s; retrying", rec.key)

    async def _write_mirror(self, rec: AIJobRecord, phase: Phase, condition: Condition) -> None:
        async with self._semaphore:
            try:
                await report(rec, phase, condition, None)
                logger.info("AIJob %s: %s (mirrored from its Job)", rec.key, phase)
            except Exception as exc:
                self._mirrored.pop(rec.uid, None)
                kube.log_failure(logger, exc, "could not mirror the Job state of %s; retrying", rec.key)

    def _log_batch(
        self, decisions: list[Decision], result: Any, capacity: Capacity, backlog: int, now: float
    ) -> None:
        record = {
            "batch": self.batches,
            "clock": round(now, 3),
            "jobs": len(decisions),
            "backlog": backlog,
            "placed": int(result.placed),
            "solver": result.solver,
            "optimal": bool(result.optimal),
            "objective": _finite(result.objective),
            "lowerBound": _finite(result.lower_bound),
            "free": capacity.free,
            "largestFreeNode": capacity.largest_free_node,
            "assignment": {d.job.key: d.gpu_type for d in decisions},
            "waiting": sorted(d.job.key for d in decisions if d.waiting),
            "fleetMode": str(self.fleet.mode),
        }
        logger.info("placement batch %s", json.dumps(record, sort_keys=True, allow_nan=False))

    async def _apply(self, rec: AIJobRecord, decision: Decision, capacity: Capacity, steer: bool) -> None:
        async with self._semaphore:
            try:
                if decision.waiting:
                    await self._wait(rec, decision.reason)
                elif decision.gpu_type is None:
                    await self._unschedulable(rec, decision.reason)
                else:
                    await self._place(rec, decision, capacity, steer)
            except Exception as exc:
                self.inflight.pop(rec.uid, None)
                kube.log_failure(logger, exc, "could not apply the placement of %s; retrying", rec.key)

    async def _wait(self, rec: AIJobRecord, reason: str) -> None:
        """Waiting for a preferred type: the phase stays, the Placed condition says what it waits for."""
        await report(rec, rec.phase, Condition("Placed", False, "Waiting", reason), Event("Waiting", reason))

    async def _unschedulable(self, rec: AIJobRecord, reason: str) -> None:
        # One Warning Event per change into Unschedulable; a new reason only updates the condition.
        event = None if rec.phase == Phase.UNSCHEDULABLE else Event("Unschedulable", reason, warning=True)
        await report(
            rec,
            Phase.UNSCHEDULABLE,
            Condition("Placed", False, "Unschedulable", reason),
            event,
            placement=None,
        )

    async def _place(self, rec: AIJobRecord, decision: Decision, capacity: Capacity, steer: bool) -> None:
        gpu_type = decision.gpu_type
        assert gpu_type is not None
        energy, duration, savings = (
            decision.predicted_energy_joules,
            decision.predicted_duration_seconds,
            decision.savings_joules,
        )
        worst = decision.worst_energy_joules
        job_name: str | None = None
        advice = await asyncio.to_thread(advise_spec, rec.spec, gpu_type, self.settings.profile)
        if steer:
            assert rec.spec is not None
            body = build_job(
                name=rec.name,
                namespace=rec.namespace,
                template=rec.spec.template,
                replicas=rec.spec.resources.replicas,
                gpus_per_replica=rec.spec.resources.gpus_per_replica,
                gpu_type=gpu_type,
                products=capacity.products.get(gpu_type, []),
                product_label=self.settings.gpu_product_label,
                gpu_resource=self.settings.gpu_resource,
                energy_joules=energy,
                duration_seconds=duration,
            )
            annotate_job(body, advice)
            if ((rec.spec.template.get("metadata") or {}).get("labels") or {}).get(KUEUE_QUEUE_LABEL):
                self._kueue_affinity(body, rec, gpu_type, capacity)
            kopf.adopt(body, owner=rec.ref)
            try:
                await asyncio.to_thread(kube.create_job, rec.namespace, body)
            except kube.ApiException as exc:
                if exc.status == 422:  # invalid (e.g. a name too long for the job-name label): final
                    await self._rejected(rec, exc)
                    return
                if exc.status != 409:
                    raise
                existing = await asyncio.to_thread(kube.read_job, rec.namespace, rec.name)
                if not owned_by(existing, rec.uid):
                    if aijob_owner_uid(existing.get("metadata") or {}):
                        self._wait_for_name(rec, existing)
                    else:
                        await self._conflict(rec)
                    return
                annotations = (existing.get("metadata") or {}).get("annotations") or {}
                if annotations.get(ANNOTATION_GPU_TYPE, gpu_type) != gpu_type:
                    gpu_type = annotations[ANNOTATION_GPU_TYPE]
                    advice = await asyncio.to_thread(advise_spec, rec.spec, gpu_type, self.settings.profile)
                est = rec.estimates.get(gpu_type)
                if est is not None and est.feasible:
                    energy, duration = est.energy_joules, est.duration_seconds
                    savings = max(0.0, (worst if worst is not None else energy) - energy)
                logger.info("adopted the existing Job %s/%s", rec.namespace, rec.name)
            job_name = rec.name
        counterfactual: dict[str, Any] = {"worstEnergyJoules": worst}
        if decision.plain_gpu_type is not None and decision.plain_energy_joules is not None:
            counterfactual.update(
                plainSchedulerGpuType=decision.plain_gpu_type,
                plainSchedulerEnergyJoules=decision.plain_energy_joules,
                savingsVsPlainSchedulerJoules=decision.plain_energy_joules - energy,
            )
        await self._record_placement(
            rec, gpu_type, job_name, energy, duration, savings, advice, counterfactual
        )

    def _kueue_affinity(
        self, body: dict[str, Any], rec: AIJobRecord, gpu_type: str, capacity: Capacity
    ) -> None:
        """A queue-labelled AIJob's Job takes the admission-gate path (:mod:`energaizer_operator.gate`):
        Kueue keeps its quota and fallback among the feasible types present whose predicted energy is
        within the energy slack of the best (plus the chosen type), and the chosen type is preferred. Only
        products with a node that has ``gpusPerReplica`` GPUs are allowed: Kueue admits on quota, and a pod
        on a flavor whose nodes are all smaller would stay Pending."""
        assert rec.spec is not None
        gpus = rec.spec.resources.gpus_per_replica

        def fitting(t: str) -> list[str]:
            return [p for p in capacity.products.get(t, []) if capacity.node_gpus.get(p, 0) >= gpus]

        present = {t: e.energy_joules for t, e in rec.estimates.items() if e.feasible and fitting(t)}
        allowed = within_slack(present, DEFAULT_ENERGY_SLACK)
        if gpu_type not in allowed:
            allowed.append(gpu_type)  # the batch's choice (e.g. after maxWaitSeconds) stays allowed
        # the chosen type had a node with that many free GPUs (batch.decide), so it fits
        chosen = fitting(gpu_type) or capacity.products[gpu_type]
        products = sorted({p for t in allowed if t != gpu_type for p in fitting(t)} | set(chosen))
        template = body["spec"]["template"]
        energy_affinity(template["spec"], self.settings.gpu_product_label, products, chosen)
        for meta in (body["metadata"], template["metadata"]):
            meta["annotations"][ANNOTATION_GPU_TYPES] = ",".join(allowed)

    async def _adopt(self, rec: AIJobRecord, job: SteeredJob) -> None:
        """The AIJob's Job exists (an earlier run created it): record it instead of placing again."""
        est = rec.estimates.get(job.gpu_type)
        if est is not None and est.feasible:
            energy, duration = est.energy_joules, est.duration_seconds
        else:
            energy = job.predicted_energy_joules or 0.0
            duration = job.predicted_duration_seconds or 0.0
        worst = max((e.energy_joules for e in rec.estimates.values() if e.feasible), default=energy)
        self.inflight[rec.uid] = InFlight(
            rec.phase, rec.generation, rec.resource_version, job.gpu_type, job.gpus, False
        )
        async with self._semaphore:
            try:
                advice = await asyncio.to_thread(advise_spec, rec.spec, job.gpu_type, self.settings.profile)
                await self._record_placement(
                    rec,
                    job.gpu_type,
                    job.name,
                    energy,
                    duration,
                    max(0.0, worst - energy),
                    advice,
                    {"worstEnergyJoules": worst},
                )
            except Exception as exc:
                self.inflight.pop(rec.uid, None)
                kube.log_failure(logger, exc, "could not record the existing Job of %s; retrying", rec.key)

    async def _record_placement(
        self,
        rec: AIJobRecord,
        gpu_type: str,
        job_name: str | None,
        energy: float,
        duration: float,
        savings: float,
        advice: JobPowerAdvice | None = None,
        counterfactual: Mapping[str, Any] | None = None,
    ) -> None:
        annotations = {**contract_annotations(gpu_type, energy, duration), **power_annotations(advice)}
        try:
            patched = await asyncio.to_thread(
                kube.patch_aijob, rec.namespace, rec.name, {"metadata": {"annotations": annotations}}, rec.uid
            )
        except kube.ApiException as exc:
            if not kube.replaced(exc):
                raise
            # The AIJob placed is gone, and one of its name was created since: not placed by this decision
            # (the new one is estimated and placed on its own). A Job created for the old one is owned by it:
            # the garbage collector deletes it, and the new one waits for its name (JobNameInUse).
            self.inflight.pop(rec.uid, None)
            logger.info(
                "AIJob %s was deleted and created again before its placement on %s was recorded: "
                "dropped (it is placed as a new AIJob)",
                rec.key,
                gpu_type,
            )
            return
        rec = rec.written(patched)  # the status write below lands over our own annotation patch
        placement: dict[str, Any] = {
            "gpuType": gpu_type,
            "predictedEnergyJoules": energy,
            "savingsJoules": savings,
            **readable_placement(energy, duration, savings),
        }
        if job_name:
            placement["jobName"] = job_name
        placement.update({k: v for k, v in (counterfactual or {}).items() if v is not None})
        placement.update(placement_fields(advice))
        where = f"Job {job_name}" if job_name else "recommendation only (annotate mode)"
        # counted when the watch shows it (even if the write below lands with an error answer)
        self.metrics.expect_placement(rec.namespace, rec.name)
        message = f"{gpu_type}: predicted {energy:.4g} J, {duration:.4g} s, saves {savings:.4g} J; {where}"
        await report(
            rec,
            Phase.PLACED,
            Condition("Placed", True, "Placed", message),
            Event("Placed", message),
            placement=placement,
        )

    async def _rejected(self, rec: AIJobRecord, exc: kube.ApiException) -> None:
        """The API refused the Job as invalid: the same Job would be refused at every batch."""
        try:
            detail = str(json.loads(exc.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            detail = ""
        message = f"the API server refused the Job {rec.name}: {detail or exc.reason or exc.status}"
        await report(
            rec,
            Phase.FAILED,
            Condition("Placed", False, "JobRejected", message),
            Event("JobRejected", message, warning=True),
        )

    def _wait_for_name(self, rec: AIJobRecord, job: Mapping[str, Any]) -> None:
        """The Job of the AIJob's name is another AIJob's: AIJob names are unique in a namespace, so it is
        the Job of a deleted AIJob of this name, which the garbage collector deletes (the Job index has not
        shown it yet). The AIJob waits for it as for a Job name the index shows in use (``JobNameInUse``,
        said at the next tick), instead of failing for good."""
        uid = str((job.get("metadata") or {}).get("uid") or "")
        self._name_taken[rec.uid] = NameTaken(uid, Recheck.after(self.clock()))
        self.inflight.pop(rec.uid, None)  # no Job on its way: its GPUs are not promised
        logger.info(
            "AIJob %s: the Job %s is a deleted AIJob's (not deleted yet); placed once it is gone",
            rec.key,
            rec.name,
        )

    async def _conflict(self, rec: AIJobRecord) -> None:
        message = f"a Job named {rec.name} exists and is not owned by this AIJob"
        await report(
            rec,
            Phase.FAILED,
            Condition("Placed", False, "JobNameConflict", message),
            Event("JobNameConflict", message, warning=True),
        )
