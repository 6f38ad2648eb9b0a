"""``report``: the one way the operator tells about an AIJob: status phase + condition(s) + Event.

Every outcome (Estimated, Invalid, Placed, Unschedulable, JobNameConflict, the Job mirror) goes
through :func:`report`: ONE merge patch of ``status`` (phase, extra fields, conditions) and at most
one Event, posted only after the patch succeeded. A patch with conditions is conditional on the
resourceVersion it was built on (:func:`patch_status_merged`), rebuilt after a 409 Conflict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from energaizer_operator import kube
from energaizer_operator.conditions import set_condition
from energaizer_operator.models import Phase
from energaizer_operator.records import AIJobRecord, version_and_conditions

MAX_MESSAGE = 1000
CONFLICT_ATTEMPTS = 5  # a conditions write rebuilt on a fresh read this many times at most


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


def status_body(
    conditions_now: Sequence[Mapping[str, Any]],
    phase: Phase | None,
    conditions: Sequence[Condition],
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status patch: ``phase``, ``fields`` and ``conditions`` set in the AIJob's ``conditions_now``."""
    status: dict[str, Any] = dict(fields or {})
    if phase is not None:
        status["phase"] = str(phase)
    merged: list[dict[str, Any]] = [dict(c) for c in conditions_now]
    for cond in conditions:
        merged = set_condition(merged, cond.type, cond.status, cond.reason, cond.message[:MAX_MESSAGE])
    if conditions:
        status["conditions"] = merged
    return status


def patch_status_merged(
    namespace: str,
    name: str,
    resource_version: str | None,
    conditions_now: Sequence[Mapping[str, Any]],
    build: Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]],
    uid: str = "",
) -> None:
    """Patch ``build(conditions)`` (blocking). A status with ``conditions`` replaces the whole list, so it is
    written only over the version it was built on; on 409 Conflict (another writer, e.g. the measurement,
    set a condition meanwhile) the AIJob is read again and the patch rebuilt on its current conditions.

    ``uid``: the AIJob the status is about. The read names the AIJob by name only: one deleted and created
    again meanwhile (``kubectl delete``, then ``apply``) is another AIJob, and this status is not its
    (404, as for an AIJob deleted)."""
    for attempt in range(CONFLICT_ATTEMPTS):
        status = build(conditions_now)
        guard = resource_version if "conditions" in status else None
        try:
            kube.patch_aijob_status(namespace, name, status, guard)
            return
        except kube.ApiException as exc:
            if exc.status != 409 or guard is None or attempt == CONFLICT_ATTEMPTS - 1:
                raise
        current = kube.read_aijob(namespace, name)
        if uid and (current.get("metadata") or {}).get("uid") not in (None, "", uid):
            raise kube.ApiException(
                status=404, reason="deleted meanwhile (an AIJob of this name, another uid)"
            )
        resource_version, conditions_now = version_and_conditions(current)


async def report(
    rec: AIJobRecord,
    phase: Phase | None,
    condition: Condition | Sequence[Condition] | None,
    event: Event | None,
    **fields: Any,
) -> None:
    """Patch ``status`` (``phase``, ``fields``, the conditions) in one request, then post ``event``."""
    conditions = [condition] if isinstance(condition, Condition) else list(condition or [])
    await asyncio.to_thread(
        patch_status_merged,
        rec.namespace,
        rec.name,
        rec.resource_version,
        rec.conditions,
        lambda now: status_body(now, phase, conditions, fields),
        rec.uid,
    )
    if event is not None:  # kopf.event: not filtered by settings.posting.level (kopf's own log lines are)
        kind = "Warning" if event.warning else "Normal"
        kopf.event(rec.ref, type=kind, reason=event.reason, message=event.message[:MAX_MESSAGE])
