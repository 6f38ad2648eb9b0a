"""Errors the estimator raises for bad input.

Every error names the offending field and, where there is a closed set, the allowed values, so that
the CLI can print it as one line and the operator can put it in an ``Invalid`` condition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class EnergaizerError(Exception):
    """Base class: a problem the user can fix (bad input, unknown name, unreadable file)."""


class InvalidInputError(EnergaizerError, ValueError):
    """A field has a bad value."""

    def __init__(self, field: str, message: str, allowed: Iterable[str] | None = None) -> None:
        self.field = field
        self.allowed = list(allowed) if allowed is not None else None
        text = f"{field}: {message}"
        if self.allowed:
            shown = ", ".join(self.allowed[:40])
            more = f" (+{len(self.allowed) - 40} more)" if len(self.allowed) > 40 else ""
            text += f" (allowed: {shown}{more})"
        super().__init__(text)


class UnknownNameError(InvalidInputError, KeyError):
    """A GPU or model name that is not in the catalog."""

    def __init__(self, field: str, name: str, allowed: Iterable[str]) -> None:
        super().__init__(field, f"unknown {field} {name!r}", allowed)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class FieldValueError(ValueError):
    """A check across fields (a pydantic model validator) that names the field to fix: pydantic gives such
    errors no location, so :func:`pydantic_location` takes it from here."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def pydantic_location(err: dict[str, Any]) -> list[str]:
    """The path of one pydantic error, ending in the field a :class:`FieldValueError` names."""
    loc = [str(x) for x in err.get("loc", ()) if x != "__root__"]
    field = getattr((err.get("ctx") or {}).get("error"), "field", None)
    return [*loc, field] if isinstance(field, str) else loc


_PYDANTIC_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _number(x: float) -> str:
    """``65,536``, ``5,000`` (a float bound), ``1e+16``."""
    return f"{x:,}" if isinstance(x, int) else f"{x:,g}"


def pydantic_message(err: dict[str, Any]) -> str:
    """One pydantic error as a short phrase: ``must be >= 1 (got -5)``, ``not a number (got nan)``."""
    value = err.get("input")
    if isinstance(value, float) and math.isnan(value):
        return "is not a number (got nan)"
    if isinstance(value, float) and math.isinf(value):
        return f"must be a finite number (got {value})"
    bound = _PYDANTIC_BOUNDS.get(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if bound is not None and bound[1] in ctx:
        return (
            f"must be {bound[0]} {_number(ctx[bound[1]])} (got {_number(value)})"
            if isinstance(value, int | float)
            else f"must be {bound[0]} {ctx[bound[1]]}"
        )
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    shown = (
        "" if isinstance(value, dict | list) or value is None or str(value) in msg else f" (got {value!r})"
    )
    return f"{msg[0].lower()}{msg[1:]}{shown}" if msg else f"is invalid{shown}"
