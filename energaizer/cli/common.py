"""Options and output helpers shared by the CLI commands (typer/stdlib imports only at top level)."""

from __future__ import annotations

import json
import math
import sys
from json.encoder import encode_basestring_ascii as _encode_str
from pathlib import Path
from typing import Annotated, Any

import typer

ProfileOpt = Annotated[
    Path | None, typer.Option("--profile", help="calibration profile JSON from `energaizer calibrate`")
]
CatalogOpt = Annotated[
    list[Path] | None, typer.Option("--catalog", help="extra catalog YAML with gpus:/models: (repeatable)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]


def load_catalogs(paths: list[Path] | None) -> None:
    if paths:
        from energaizer.catalog import load_extra

        for p in paths:
            load_extra(p)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """``json.dumps(data, indent=indent)`` with non-finite floats as ``null``.

    A list of same-shaped flat-or-nested dicts (the ``--from-csv`` output: tens of thousands of rows)
    takes a columnar fast path that produces the very same text; anything else goes through
    :mod:`json`.
    """
    if type(indent) is int and type(data) is list and data:
        fast = _dumps_rows(data, indent)
        if fast is not None:
            return fast
    return json.dumps(_clean(data), indent=indent, allow_nan=False)


def print_json(data: Any, indent: int | None = 2) -> None:
    sys.stdout.write(dumps_json(data, indent))
    sys.stdout.write("\n")


# --- columnar JSON encoder for lists of same-shaped dicts --------------------------------------------
# json.dumps with an indent runs the pure-Python encoder (~1 s for 20,000 estimate rows); here each
# column is encoded at once with the encoder's own primitives (float.__repr__, int.__repr__,
# encode_basestring_ascii) and each row is filled into one %-template of its shape.

_NON_FINITE = frozenset({"nan", "inf", "-inf"})
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_FLOAT = frozenset({float})
_FLOAT_OR_NONE = frozenset({float, type(None)})


def _encode_scalar(value: Any) -> str:
    t = type(value)
    if t is float:
        text = float.__repr__(value)
        return "null" if text in _NON_FINITE else text
    if t is str:
        return _encode_str(value)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return int.__repr__(value)
    return "null"  # None (the only other type let through by _encode_column)


def _encode_column(column: list) -> list[str] | None:
    """JSON text of every value of a column of scalars; None when a value is not a plain scalar."""
    types = set(map(type, column))
    if not types <= _SCALAR_TYPES:
        return None
    if types <= _FLOAT_OR_NONE:  # the common case: measures, None where a row is infeasible
        if types == _FLOAT:
            out = list(map(float.__repr__, column))
        else:
            frepr = float.__repr__
            out = ["null" if x is None else frepr(x) for x in column]
        if not _NON_FINITE.isdisjoint(out):
            out = ["null" if x in _NON_FINITE else x for x in out]
        return out
    if types == {str}:
        return list(map(_encode_str, column))
    if types == {int}:
        return list(map(int.__repr__, column))
    return list(map(_encode_scalar, column))


def _dumps_rows(rows: list, indent: int) -> str | None:
    """The fast path of :func:`dumps_json` for a non-empty list; None when ``rows`` does not fit it."""
    encoded = _encode_dicts(rows, 1, indent)
    if encoded is None:
        return None
    inner = "\n" + " " * indent
    return "[" + inner + ("," + inner).join(encoded) + "\n]"


def _encode_dicts(rows: list, level: int, indent: int) -> list[str] | None:
    """JSON text of each dict of ``rows`` (all dicts with the same keys, in the same order) at nesting
    ``level``; None when the rows differ in shape or hold something other than scalars and dicts."""
    first = rows[0]
    if type(first) is not dict:
        return None
    keys = tuple(first)
    for row in rows:
        if type(row) is not dict or tuple(row) != keys:
            return None
    if not keys:
        return ["{}"] * len(rows)
    if not all(type(k) is str for k in keys):
        return None
    inner = "\n" + " " * (indent * (level + 1))
    outer = "\n" + " " * (indent * level)
    columns: list[list[str]] = []
    parts: list[str] = []
    for key in keys:
        column = [row[key] for row in rows]
        if type(column[0]) is dict:
            encoded = _encode_dicts(column, level + 1, indent)
        else:
            encoded = _encode_column(column)
        if encoded is None:
            return None
        columns.append(encoded)
        parts.append(_encode_str(key).replace("%", "%%") + ": %s")
    template = "{" + inner + ("," + inner).join(parts) + outer + "}"
    return [template % values for values in zip(*columns, strict=True)]


def fmt_energy(j: float | None) -> str:
    if j is None or not math.isfinite(j):
        return "-"
    for unit, scale in (("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if abs(j) >= scale:
            return f"{j / scale:,.2f} {unit}"
    return f"{j:,.1f} J"


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s >= 3600:
        return f"{s / 3600:,.2f} h"
    if s >= 60:
        return f"{s / 60:,.1f} min"
    if s >= 1:
        return f"{s:,.2f} s"
    return f"{s * 1e3:,.2f} ms"


def operator_module(name: str, command: str) -> Any:
    """Import ``energaizer_operator.<name>``; without the operator extra (kopf, kubernetes, aiohttp,
    prometheus-client) that is a one-line input error naming ``command``, not a traceback."""
    import importlib

    from energaizer.errors import InvalidInputError

    try:
        return importlib.import_module(f"energaizer_operator.{name}")
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            command, f"needs the operator extra ({exc.name} is missing): pip install 'energaizer[operator]'"
        ) from None
