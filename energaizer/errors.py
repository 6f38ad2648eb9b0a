"""Errors the estimator raises for bad input.

Every error names the offending field and, where there is a closed set, the allowed values, so that
the CLI can print it as one line and the operator can put it in an ``Invalid`` condition.
"""

from __future__ import annotations

from collections.abc import Iterable


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
