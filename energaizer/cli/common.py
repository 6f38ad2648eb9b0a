"""Options and output helpers shared by the CLI commands (typer/stdlib imports only at top level)."""

from __future__ import annotations

import json
import math
import sys
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


def print_json(data: Any, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(_clean(data), indent=indent, allow_nan=False))
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
