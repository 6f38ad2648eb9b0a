"""Kubernetes-style status conditions."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Iterable[Mapping[str, Any]], type_: str, status: bool, reason: str, message: str = ""
) -> list[dict[str, Any]]:
    """``conditions`` with ``type_`` set; ``lastTransitionTime`` changes only when the status flips."""
    value = "True" if status else "False"
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        cond = dict(cond)
        if cond.get("type") == type_:
            found = True
            changed = cond.get("status") != value
            cond.update(status=value, reason=reason, message=message)
            if changed or not cond.get("lastTransitionTime"):
                cond["lastTransitionTime"] = now()
        out.append(cond)
    if not found:
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now(),
            }
        )
    return out
