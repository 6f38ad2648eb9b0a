"""Options and output helpers shared by the CLI commands (typer/stdlib imports only at top level)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

ProfileOpt = Annotated[
    Path | None, typer.Option("--profile", help="calibration profile JSON from `energaizer calibrate`")
]
CatalogOpt = Annotated[
    list[Path] | None, typer.Option("--catalog", help="extra catalog YAML with gpus:/models: (repeatable)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
WideOpt = Annotated[bool, typer.Option("--wide", "-w", help="more columns in the table (as kubectl -o wide)")]


def load_catalogs(paths: list[Path] | None) -> None:
    """The ``--catalog`` files, on top of the built-in and ``ENERGAIZER_CATALOG`` ones. A file that adds
    nothing (empty, comments only, ``{}``) is refused: naming it on the command line is a mistake (a
    wrong or not yet written file)."""
    if paths:
        from energaizer.catalog import load_extra
        from energaizer.errors import InvalidInputError

        for p in paths:
            parsed = load_extra(p)
            if not parsed.gpus and not parsed.models:
                raise InvalidInputError(
                    "--catalog", f"{p} adds no GPU or model: give a file with gpus: or models: entries"
                )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def dumps_json(data: Any, pretty: bool = True) -> str:
    """JSON text of ``data`` (indented by 2, or compact), non-finite floats as ``null``.

    orjson writes the ``--from-csv`` output (20,000 estimate rows, 20 MB) in ~20 ms where the standard
    library's indenting encoder, pure Python, takes ~1 s. What orjson cannot write (integers beyond
    64 bits) goes through :mod:`json`, with the same result."""
    try:
        return orjson.dumps(data, option=_PRETTY if pretty else _COMPACT).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_clean(data), indent=2 if pretty else None, allow_nan=False)


def join_json_arrays(parts: list[str]) -> str:
    """The indented JSON texts of arrays (``dumps_json(..., pretty=True)``) -> the indented text of one
    array of all their elements, in order: what ``dumps_json`` writes for the concatenated lists."""
    items = [text[1:-1].strip("\n") for text in parts]
    items = [text for text in items if text]  # an empty part: "[]"
    return "[\n" + ",\n".join(items) + "\n]" if items else "[]"


_COMPACT = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_PRETTY = _COMPACT | orjson.OPT_INDENT_2


def print_json(data: Any, pretty: bool = True) -> None:
    sys.stdout.write(dumps_json(data, pretty))
    sys.stdout.write("\n")


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


# --- numeric flags --------------------------------------------------------------------------------


def number_range(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    allow_inf: bool = False,
):  # type: ignore[no-untyped-def]
    """A typer ``callback`` that rejects NaN ("not a number"), infinities and values out of range.

    Typer's own ``min``/``max`` compare NaN as out of range ("must be <= 10") and accept ``inf``;
    this names the actual problem. The bounds also go into the option's help text via
    :func:`range_help`.
    """

    def check(value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, list | tuple):
            return [check(v) for v in value]
        x = float(value)
        if math.isnan(x):
            raise typer.BadParameter("not a number (nan)")
        if math.isinf(x) and not (allow_inf and x > 0):
            raise typer.BadParameter(f"must be a finite number (got {value})")
        for bound, ok, word in (
            (ge, lambda b: x >= b, ">="),
            (gt, lambda b: x > b, ">"),
            (le, lambda b: x <= b, "<="),
            (lt, lambda b: x < b, "<"),
        ):
            if bound is not None and not ok(bound):
                raise typer.BadParameter(f"must be {word} {bound:g} (got {value:g})")
        return value

    return check


def range_help(text: str, *, ge=None, gt=None, le=None, lt=None) -> str:  # type: ignore[no-untyped-def]
    """``text`` with the allowed range appended, e.g. ``"... [0 <= x <= 10]"``."""
    low = f"{ge:g} <= " if ge is not None else f"{gt:g} < " if gt is not None else ""
    high = f" <= {le:g}" if le is not None else f" < {lt:g}" if lt is not None else ""
    return f"{text} \\[{low}x{high}]" if low or high else text


def number_option(*decls: str, help: str = "", ge=None, gt=None, le=None, lt=None, allow_inf=False, **kw):  # type: ignore[no-untyped-def]
    """``typer.Option`` for a number in a range (see :func:`number_range`); finite unless ``allow_inf``
    (then ``inf`` means "no limit")."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    check = number_range(**bounds, allow_inf=allow_inf)
    return typer.Option(*decls, help=range_help(help, **bounds), callback=check, **kw)


# --- tables ---------------------------------------------------------------------------------------


def id_column(table: Any, header: str, values: list[str], **kw: Any) -> None:
    """Add a column of ids that is never cut or folded: the other columns fold instead."""
    width = max([len(header), *(len(v) for v in values)])
    table.add_column(header, no_wrap=True, min_width=width, overflow="fold", **kw)


def keep_ids(table: Any) -> Any:
    """An already-built table with its first column (the ids) never cut or folded, and every other
    column folded rather than cut with an ellipsis: ``id_column`` after the fact."""
    for i, col in enumerate(table.columns):
        if i == 0:
            cells = [str(c) for c in col.cells]
            col.no_wrap = True
            col.min_width = max([len(str(col.header)), *(len(c) for c in cells)])
        col.overflow = "fold"
    return table


def output_console() -> Any:
    """The stdout console. On a terminal (or with COLUMNS set) tables fit its width, ids kept whole and
    other columns folded; in a pipe or a CI log, where no width is known, nothing is wrapped or cut."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=10_000)
    return console


# Above this many rows a rich table takes seconds to lay out (20,000 CSV rows: ~25 s): plain columns instead.
LONG_TABLE_ROWS = 1000


def print_plain_table(
    title: str, headers: list[str], rows: list[list[str]], right: list[bool], notes: list[str]
) -> None:
    """A long table as plain text columns, as ``kubectl get`` prints: the title, a header line, one line
    per row (cells padded to their column's widest, ``right``-justified where numbers), nothing wrapped
    or cut; then the notes, one per line. Written at once: 20,000 rows in well under a second."""
    widths = [max([len(h), *(len(r[j]) for r in rows)]) for j, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "  ".join(padded).rstrip()

    text = [title, line(headers), *(line(r) for r in rows), *notes]
    sys.stdout.write("\n".join(text) + "\n")


def print_tables(*renderables: Any) -> None:
    console = output_console()
    for r in renderables:
        console.print(r)


def given_on_command_line(ctx: typer.Context, *names: str) -> list[str]:
    """The flags (``--gpu-count``) of the parameters ``names`` (Python names) of the command running in
    ``ctx`` that the user named on the command line, whatever their value: ``--gpu-count 1`` is given
    although 1 is the default. In the order of ``names``."""
    flags = {p.name: max(p.opts, key=len) for p in ctx.command.params}
    return [
        flags[name]
        for name in names
        if (source := ctx.get_parameter_source(name)) is not None
        and source.name in ("COMMANDLINE", "ENVIRONMENT")
    ]
