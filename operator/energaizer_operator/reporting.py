"""``report``: the one way the operator tells about an AIJob: status phase + condition(s) + Event.

Every outcome (Estimated, Invalid, Placed, Unschedulable, JobNameConflict, the Job mirror) goes
through :func:`report`: ONE merge patch of ``status`` (phase, extra fields, conditions) and at most
one Event, posted only after the patch succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from energaizer_operator import kube
from energaizer_operator.conditions import set_condition
from energaizer_operator.models import Phase
from energaizer_operator.records import AIJobRecord

MAX_MESSAGE = 1000


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
    rec: AIJobRecord,
    phase: Phase | None,
    conditions: Sequence[Condition],
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = dict(fields or {})
    if phase is not None:
        status["phase"] = str(phase)
    merged: list[dict[str, Any]] = [dict(c) for c in rec.conditions]
    for cond in conditions:
        merged = set_condition(merged, cond.type, cond.status, cond.reason, cond.message[:MAX_MESSAGE])
    if conditions:
        status["conditions"] = merged
    return status


async def report(
    rec: AIJobRecord,
    phase: Phase | None,
    condition: Condition | Sequence[Condition] | None,
    event: Event | None,
    **fields: Any,
) -> None:
    """Patch ``status`` (``phase``, ``fields``, the conditions) in one request, then post ``event``."""
    conditions = [condition] if isinstance(condition, Condition) else list(condition or [])
    status = status_body(rec, phase, conditions, fields)
    await asyncio.to_thread(kube.patch_aijob_status, rec.namespace, rec.name, status)
    if event is not None:  # kopf.event: not filtered by settings.posting.level (kopf's own log lines are)
        kind = "Warning" if event.warning else "Normal"
        kopf.event(rec.ref, type=kind, reason=event.reason, message=event.message[:MAX_MESSAGE])
