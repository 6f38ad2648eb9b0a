"""What the AIJob index keeps per object: enough to place and steer it without re-reading it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from energaizer_operator import API_VERSION, KIND
from energaizer_operator.batch import PendingJob, TypeEstimate


@dataclass(frozen=True)
class AIJobRecord:
    namespace: str
    name: str
    uid: str
    generation: int | None
    phase: str | None
    observed_generation: int | None
    spec: Mapping[str, Any]
    estimates: Mapping[str, TypeEstimate] = field(default_factory=dict)
    conditions: tuple[Mapping[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def up_to_date(self) -> bool:
        """Estimated for the current spec (``observedGeneration`` == ``generation``)."""
        return self.generation is None or self.observed_generation == self.generation

    @property
    def ref(self) -> dict[str, Any]:
        """A minimal body for owner references and events."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid, "labels": {}},
        }

    def pending_job(self, default_objective: str) -> PendingJob:
        resources = self.spec.get("resources") or {}
        gpr = int(resources.get("gpusPerReplica") or 1)
        replicas = int(resources.get("replicas") or 1)
        objective = (self.spec.get("placement") or {}).get("objective") or default_objective
        return PendingJob(self.key, self.uid, gpr * replicas, gpr, objective, self.estimates)

    def mode(self, default_mode: str) -> str:
        return (self.spec.get("placement") or {}).get("mode") or default_mode


def aijob_record(body: Mapping[str, Any]) -> AIJobRecord:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    estimates = {
        e["gpuType"]: TypeEstimate(
            float(e.get("energyJoules", 0.0)),
            float(e.get("durationSeconds", 0.0)),
            float(e.get("averagePowerWatts", 0.0)),
            bool(e.get("feasible")),
            str(e.get("reason") or ""),
        )
        for e in status.get("estimates") or []
        if isinstance(e, Mapping) and e.get("gpuType")
    }
    return AIJobRecord(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=meta.get("generation"),
        phase=status.get("phase"),
        observed_generation=status.get("observedGeneration"),
        spec=dict(body.get("spec") or {}),
        estimates=estimates,
        conditions=tuple(c for c in status.get("conditions") or [] if isinstance(c, Mapping)),
    )
