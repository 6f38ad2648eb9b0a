"""The estimation loop: every AIJob that needs estimates gets them, in batches, level-triggered.

Every ``window`` the loop reads the AIJob index and takes every record without a phase or with a
spec the operator has not handled (``observedGeneration != generation``), whatever kopf's own
annotations say: after a restart (even a SIGKILL between two writes) nothing is left behind. Valid
specs are estimated together in ONE vectorised estimator call in a worker thread (the event loop
stays free); each AIJob then gets ONE status patch and one Event. Invalid specs (parsed once, in
the index) get phase ``Invalid``. A write in flight is remembered by (uid, generation) until the
watch brings it back, so nothing is estimated twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from energaizer.errors import InvalidInputError
from energaizer_operator import kube
from energaizer_operator.estimation import candidate_types, estimate_many, types_joined
from energaizer_operator.inventory import compute_capacity
from energaizer_operator.loops import IndexLoop
from energaizer_operator.models import EstimateStatus, Phase
from energaizer_operator.records import AIJobRecord, SpecError, describe_spec_error
from energaizer_operator.reporting import Condition, Event, report

logger = logging.getLogger("energaizer_operator.estimating")

PARALLEL_WRITES = 16
MAX_BATCH = 2000  # AIJobs per estimator call (bounds one call's memory and latency)


class EstimateLoop(IndexLoop):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inflight: dict[str, int | None] = {}  # uid -> generation being written
        self._semaphore = asyncio.Semaphore(PARALLEL_WRITES)
        self._no_types_reported = False
        self._writes: set[asyncio.Task[None]] = set()

    def interval(self) -> float:
        return self.settings.estimate_window_seconds  # what arrives meanwhile: one batch

    def _todo(self, records: list[AIJobRecord], present: list[str]) -> list[AIJobRecord]:
        def needed(rec: AIJobRecord) -> bool:
            # an Unschedulable AIJob estimated before a node of a new type joined: estimated on it too
            # (e.g. a what-if knob that only that type takes, a model too large for the other types)
            joined = rec.phase == Phase.UNSCHEDULABLE and rec.up_to_date
            return rec.needs_estimate or (joined and types_joined(rec.spec, rec.estimates, present))

        by_uid = {r.uid: r for r in records}
        for uid, generation in list(self.inflight.items()):
            rec = by_uid.get(uid)
            if rec is None or rec.generation != generation or not needed(rec):
                del self.inflight[uid]
        return [r for r in records if needed(r) and r.uid not in self.inflight]

    async def tick(self) -> int:
        """One batch; returns how many AIJobs it handled."""
        records = self.indices.live(self.indices.aijobs)
        present: list[str] = []
        if any(r.needs_estimate or r.phase == Phase.UNSCHEDULABLE for r in records):
            present = compute_capacity(self.indices.live(self.indices.nodes), [], []).types
        todo = self._todo(records, present)
        if not todo:
            return 0
        steered = {j.owner_uid for j in self.indices.live(self.indices.jobs) if j.owner_uid}
        invalid: list[tuple[AIJobRecord, SpecError]] = []
        batch: list[tuple[AIJobRecord, list[str]]] = []
        waiting_for_types = False
        for rec in todo:
            if rec.spec is None:
                invalid.append((rec, rec.spec_error or SpecError("spec", "spec: invalid")))
                continue
            try:
                types = candidate_types(rec.spec, present)
            except InvalidInputError as exc:
                invalid.append((rec, describe_spec_error(exc)))
                continue
            if types:
                batch.append((rec, types))
            else:
                waiting_for_types = True
        if waiting_for_types and not self._no_types_reported:
            self._no_types_reported = True
            logger.warning("no GPU node of a known GPU type in the cluster yet; AIJobs wait for one")
        batch = batch[:MAX_BATCH]
        for rec, _ in invalid:
            self.inflight[rec.uid] = rec.generation
        for rec, _ in batch:
            self.inflight[rec.uid] = rec.generation
        writes = [self._write(rec, self._invalid(rec, err)) for rec, err in invalid]
        if batch:
            started = time.perf_counter()
            results = await asyncio.to_thread(
                estimate_many, [(rec.spec, types) for rec, types in batch], self.settings.profile
            )
            per_job = (time.perf_counter() - started) / len(batch)
            for (rec, _), result in zip(batch, results, strict=True):
                if isinstance(result, InvalidInputError):
                    writes.append(self._write(rec, self._invalid(rec, describe_spec_error(result))))
                else:
                    self.metrics.estimation_seconds.observe(per_job)
                    writes.append(self._write(rec, self._estimated(rec, result, rec.uid in steered)))
            logger.info("estimated %d AIJobs in one batch (%.3f s)", len(batch), per_job * len(batch))
        # The writes run on while the next window collects the next batch (in flight until echoed).
        for write in writes:
            task = asyncio.create_task(write)
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        return len(invalid) + len(batch)

    async def drain(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        await asyncio.gather(*self._writes, return_exceptions=True)

    @staticmethod
    def _invalid(rec: AIJobRecord, err: SpecError) -> Any:
        fields = {"observedGeneration": rec.generation, "estimates": None, "placement": None}
        return report(
            rec,
            Phase.INVALID,
            Condition("Invalid", True, "InvalidSpec", err.message),
            Event("InvalidSpec", err.message, warning=True),
            **fields,
        )

    @staticmethod
    def _estimated(rec: AIJobRecord, estimates: list[EstimateStatus], has_job: bool) -> Any:
        feasible = [e for e in estimates if e.feasible and e.energy_joules is not None]
        if feasible:
            best = min(feasible, key=lambda e: e.energy_joules or 0.0)
            message = f"{len(feasible)}/{len(estimates)} GPU types feasible; least energy on "
            message += f"{best.gpu_type}: {best.energy_joules:.4g} J in {best.duration_seconds:.4g} s"
        else:
            message = "no feasible GPU type: " + "; ".join(f"{e.gpu_type}: {e.reason}" for e in estimates)
        # An AIJob whose Job exists keeps its phase (Jobs are immutable); others are placed (again). An
        # Invalid one with a Job (its spec broken after placement, then fixed) becomes Estimated, so that
        # the placer records the Job it has (adopts it, never a second one) and mirrors the Job again.
        keep = has_job and rec.phase is not None and rec.phase != Phase.INVALID
        phase = None if keep else Phase.ESTIMATED
        event = None
        if keep and rec.observed_generation is not None:  # a spec edit after its Job was created
            job = rec.placed_job_name or rec.name
            kept = f"the Job {job} runs on with the spec it was created from (a Job cannot change; "
            kept += "delete and re-create the AIJob to run this spec)"
            message += f"; {kept}"
            event = Event("JobKept", f"spec generation {rec.generation} estimated; {kept}")
        # No Event (but for a spec edit the Job does not follow): the Estimated condition carries the
        # message, and a burst of 1,000 AIJobs would otherwise cost the API server 1,000 more requests
        # before the first placement.
        return report(
            rec,
            phase,
            [Condition("Invalid", False, "ValidSpec"), Condition("Estimated", True, "Estimated", message)],
            event,
            observedGeneration=rec.generation,
            estimates=[e.wire() for e in estimates],
        )

    async def _write(self, rec: AIJobRecord, coro: Any) -> None:
        async with self._semaphore:
            try:
                await coro
            except Exception as exc:
                self.inflight.pop(rec.uid, None)
                kube.log_failure(logger, exc, "could not write the estimates of %s; retrying", rec.key)
