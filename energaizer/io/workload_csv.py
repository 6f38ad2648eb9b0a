"""The workload CSV of contract section 3 -> (Workload, GPU id) rows, with precise errors.

Columns: model, gpu, gpu_count, precision, task, requests, input_tokens, output_tokens, batch_size,
tokens, steps, global_batch_size, sequence_length, frequency_mhz, power_limit_w; a model not in the
catalog is described by arch_type, params_b, layers, hidden, heads, kv_heads, ffn, vocab,
moe_experts, moe_active_experts, moe_expert_ffn, head_dim; the parallel layout of an inference replica:
tensor_parallel, expert_parallel, data_parallel (vLLM meanings). Extensions: attention (auto|flash|eager),
execution (auto|eager|graphs|legacy-engine), activation_recomputation, prompt_logits (true: the vocabulary
projection over every prompt token, a scoring pass). Measurement files add measured_energy_joules and optionally
measured_duration_seconds, measured_average_power_watts; other columns are carried through.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from energaizer.errors import InvalidInputError, pydantic_location, pydantic_message
from energaizer.files import bounded_lines, open_text, table_header
from energaizer.io.layout import check_knobs, check_layout, check_prompt_logits
from energaizer.workload import PRECISION_SYNONYMS, Workload

WORKLOAD_COLUMNS = (
    "model",
    "gpu",
    "gpu_count",
    "precision",
    "task",
    "requests",
    "input_tokens",
    "output_tokens",
    "batch_size",
    "tokens",
    "steps",
    "global_batch_size",
    "sequence_length",
    "frequency_mhz",
    "power_limit_w",
)
ARCH_COLUMNS = (
    "arch_type",
    "params_b",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "ffn",
    "vocab",
    "moe_experts",
    "moe_active_experts",
    "moe_expert_ffn",
    "head_dim",
)
EXTENSION_COLUMNS = (
    "attention",
    "execution",
    "tensor_parallel",
    "expert_parallel",
    "data_parallel",
    "activation_recomputation",
    "prompt_logits",
)
MEASURED_COLUMNS = ("measured_energy_joules", "measured_duration_seconds", "measured_average_power_watts")
# Column order of the shipped measurement files (energaizer/data/measurements, holdout): provenance first
# (``config``: the source's own name for the configuration a row ran, the same on every GPU type it ran on,
# where the workload columns hold per-run averages; GPU-ranking agreement pairs rows by it).
MEASUREMENT_FILE_COLUMNS = (
    "source",
    "source_ref",
    "config",
    *WORKLOAD_COLUMNS,
    "attention",
    "execution",
    "tensor_parallel",
    "expert_parallel",
    "data_parallel",
    *MEASURED_COLUMNS,
)
INT_FIELDS = {
    "gpu_count",
    "requests",
    "input_tokens",
    "output_tokens",
    "batch_size",
    "steps",
    "global_batch_size",
    "sequence_length",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "ffn",
    "vocab",
    "moe_experts",
    "moe_active_experts",
    "moe_expert_ffn",
    "head_dim",
    "tensor_parallel",
    "expert_parallel",
    "data_parallel",
}
FLOAT_FIELDS = {"tokens", "frequency_mhz", "power_limit_w", "params_b", *MEASURED_COLUMNS}


@dataclass
class CsvRow:
    line: int
    workload: Workload
    gpu: str
    measured: dict[str, float] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


KNOWN_COLUMNS = frozenset((*WORKLOAD_COLUMNS, *ARCH_COLUMNS, *EXTENSION_COLUMNS, *MEASURED_COLUMNS))


def _number(value: str, name: str, where: str) -> float | int:
    try:
        x = float(value)
    except ValueError:
        raise InvalidInputError(name, f"{where}: {value!r} is not a number") from None
    if math.isnan(x):
        raise InvalidInputError(name, f"{where}: {value!r} is not a number")
    if math.isinf(x):
        raise InvalidInputError(name, f"{where}: {value!r} is not a finite number")
    if name in INT_FIELDS:
        if not math.isfinite(x) or x != int(x):
            raise InvalidInputError(name, f"{where}: {value!r} must be a whole number")
        return int(x)
    return x


def _cell(key: str, text: str, where: str) -> Any:
    """The value of one non-empty, stripped cell: int/float for numeric columns, else the text."""
    if key in INT_FIELDS:
        try:
            return int(text)  # the common case; "1e6" and "128.0" take _number's float path
        except ValueError:
            return _number(text, key, where)
    if key in FLOAT_FIELDS:
        try:
            x = float(text)
        except ValueError:
            return _number(text, key, where)
        return x if math.isfinite(x) else _number(text, key, where)
    return text


def row_to_workload(raw: dict[str, str], where: str) -> tuple[Workload, str, dict[str, float]]:
    vals: dict[str, Any] = {}
    for key, text in raw.items():
        if key is None or text is None:
            continue
        text = text.strip()
        if text:
            vals[key] = _cell(key, text, where)
    return _workload_from_values(vals, where)


def _precision(value: Any) -> str:
    """A precision cell, the spellings other tools write (bfloat16, mxfp4, ...) read as ours."""
    text = str(value).strip().lower()
    return PRECISION_SYNONYMS.get(text, text)


def _workload_from_values(
    vals: dict[str, Any], where: str, checked: set[tuple[Any, ...]] | None = None
) -> tuple[Workload, str, dict[str, float]]:
    """Parsed, non-empty cells of one row -> (Workload, GPU name, measured values).

    ``checked``: the catalog names and layouts already found valid in this file (a cache for long files)."""
    gpu = vals.get("gpu")
    if not gpu:
        raise InvalidInputError("gpu", f"{where}: missing (a catalog GPU id, see `energaizer gpus`)")
    task = str(vals.get("task", "inference")).lower()
    spec: dict[str, Any] = {
        "task": task,
        "precision": _precision(vals.get("precision", "bf16")),
        "gpu_count": vals.get("gpu_count", 1),
    }
    for k in ("frequency_mhz", "power_limit_w", "tensor_parallel", "expert_parallel", "data_parallel"):
        if k in vals:
            spec[k] = vals[k]
    for k in ("attention", "execution"):
        if k in vals:
            spec[k] = str(vals[k]).lower()
    _check_task_columns(vals, task, where)
    scored = _flag(vals, "prompt_logits", where)
    if scored and task == "training":
        raise InvalidInputError(
            "prompt_logits", f"{where}: an inference column in a training row (training projects every token)"
        )
    if task == "inference":
        spec["inference"] = {
            k: vals[k] for k in ("requests", "input_tokens", "output_tokens", "batch_size") if k in vals
        }
        if scored:
            spec["inference"]["prompt_logits"] = True
    elif task == "training":
        tr = {k: vals[k] for k in ("tokens", "steps", "global_batch_size", "sequence_length") if k in vals}
        if str(vals.get("activation_recomputation", "")).lower() in ("1", "true", "yes"):
            tr["activation_recomputation"] = True
        spec["training"] = tr
    else:
        raise InvalidInputError("task", f"{where}: {task!r}", ["inference", "training"])
    model = vals.get("model")
    if ("layers" in vals or "hidden" in vals) and not _in_catalog(model):
        arch = {k: vals[k] for k in ARCH_COLUMNS if k in vals}
        arch["id"] = str(model or f"custom-{where}").lower()
        arch.setdefault("arch_type", "decoder")
        spec["architecture"] = arch
    else:
        if not model:
            raise InvalidInputError("model", f"{where}: missing (a catalog name, or architecture columns)")
        if checked is None or ("model", model) not in checked:
            _known("model", str(model), where)
            if checked is not None:
                checked.add(("model", model))
        spec["model"] = model
    try:
        workload = Workload.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(pydantic_location(err))
        raise InvalidInputError(loc or "row", f"{where}: {pydantic_message(err)}") from None
    if checked is None or ("gpu", gpu) not in checked:
        _known("gpu", str(gpu), where)
        if checked is not None:
            checked.add(("gpu", gpu))
    layout = (
        "layout",
        workload.model,
        workload.task,
        workload.gpu_count,
        workload.tensor_parallel,
        workload.data_parallel,
        workload.expert_parallel,
        workload.training.global_batch_size if workload.training is not None else None,
    )
    if checked is None or workload.architecture is not None or layout not in checked:
        check_layout(workload, where)
        if checked is not None and workload.architecture is None:
            checked.add(layout)
    knobs = ("knobs", gpu, workload.frequency_mhz, workload.power_limit_w)
    if checked is None or knobs not in checked:
        from energaizer.catalog import get_gpu

        check_knobs(workload, get_gpu(str(gpu)), where)
        if checked is not None:
            checked.add(knobs)
    if scored:  # per row: the layout check above is cached per model and layout
        check_prompt_logits(workload, where)
    measured = {k: float(vals[k]) for k in MEASURED_COLUMNS if k in vals}
    for k, v in measured.items():
        if v <= 0:
            raise InvalidInputError(k, f"{where}: {v:g} must be > 0 (a measurement of the whole workload)")
    return workload, str(gpu), measured


_INFERENCE_SIZES = ("requests", "input_tokens", "output_tokens", "batch_size")
_TRAINING_SIZES = ("tokens", "steps", "global_batch_size", "sequence_length")


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _flag(vals: dict[str, Any], key: str, where: str) -> bool:
    """A yes/no column: empty or absent is no; anything but the spellings below is an error."""
    text = str(vals.get(key, "")).strip().lower()
    if text in _TRUE:
        return True
    if text in ("", *_FALSE):
        return False
    raise InvalidInputError(key, f"{where}: {vals[key]!r} is not true or false", [*_TRUE, *_FALSE])


def _check_task_columns(vals: dict[str, Any], task: str, where: str) -> None:
    """A row fills the sizes of its own task only (a file may mix tasks, each row leaving the others empty)."""
    other = _TRAINING_SIZES if task == "inference" else _INFERENCE_SIZES if task == "training" else ()
    for key in other:
        if key in vals:
            kind = "a training" if task == "inference" else "an inference"
            row = "an inference" if task == "inference" else "a training"
            raise InvalidInputError(
                key, f"{where}: {kind} size in {row} row (leave it empty, or set task to the other kind)"
            )


def _known(kind: str, name: str, where: str) -> None:
    """An unknown catalog name, reported with the row's line (the estimator would not say which row)."""
    from energaizer.catalog import get_gpu, get_model
    from energaizer.errors import UnknownNameError

    try:
        (get_gpu if kind == "gpu" else get_model)(name)
    except UnknownNameError as exc:
        hint = (
            "see `energaizer gpus`"
            if kind == "gpu"
            else "see `energaizer models`, or give architecture columns"
        )
        raise InvalidInputError(kind, f"{where}: unknown {kind} {name!r} ({hint})", exc.allowed) from None


def _in_catalog(model: Any) -> bool:
    if not model:
        return False
    from energaizer.catalog import get_model
    from energaizer.errors import UnknownNameError

    try:
        get_model(str(model))
    except UnknownNameError:
        return False
    return True


def read_workload_csv(source: str | Path | io.TextIOBase) -> list[CsvRow]:
    """Parse a workload / measurement CSV; errors name the line and column."""
    return read_csv_cells(source).parse()


@dataclass
class CsvCells:
    """A workload CSV read as text (header and cells, each data row with its line number), not yet
    validated: :meth:`parse` turns any contiguous range of its rows into :class:`CsvRow` s, so that the
    rows of a large file can be validated in parts (in worker processes) and give what
    :func:`read_workload_csv` gives."""

    name: str
    header: list[str]
    rows: list[tuple[int, list[str]]]

    def __len__(self) -> int:
        return len(self.rows)

    def parse(self, start: int = 0, stop: int | None = None) -> list[CsvRow]:
        """Rows ``start:stop`` validated; the first bad one raises (its line and column named)."""
        return _read_rows(self.rows[start:stop], self.header, self.name)


def read_csv_cells(source: str | Path | io.TextIOBase) -> CsvCells:
    """Read a workload / measurement CSV's text (a malformed, binary or empty file, or a header without the
    needed columns, raises here; the cells are validated by :meth:`CsvCells.parse`)."""
    name = str(source) if not isinstance(source, io.TextIOBase) else "<stdin>"
    handle = source if isinstance(source, io.TextIOBase) else open_text(source, "csv")
    with handle:
        try:
            reader = csv.reader(bounded_lines(handle, name, "csv"))
            header = next(reader, None)
            if not header:
                raise InvalidInputError("csv", f"{name} is empty (expected a header row)")
            header = table_header(header, name, KNOWN_COLUMNS)
            if "gpu" not in header or ("model" not in header and "layers" not in header):
                raise InvalidInputError(
                    "csv",
                    f"{name}: header must have gpu and model (or architecture) "
                    f"columns; got {', '.join(header[:12])}",
                )
            rows = [(reader.line_num, row) for row in reader if row]  # blank lines skipped, as DictReader
        except csv.Error as exc:
            raise InvalidInputError("csv", f"{name}: malformed CSV ({exc})") from None
        except UnicodeDecodeError:
            raise InvalidInputError("csv", f"{name}: not UTF-8 text") from None
    if not rows:
        raise InvalidInputError("csv", f"{name} has a header but no rows")
    return CsvCells(name, header, rows)


def _read_rows(cells: list[tuple[int, list[str]]], header: list[str], name: str) -> list[CsvRow]:
    """Data rows ``(line number, cells)`` under ``header`` (no column named twice) -> CsvRows (as
    ``csv.DictReader`` reads them: a short row's missing cells empty)."""
    width = len(header)
    # (index, column, kind): kind 1 = whole number, 2 = number, 0 = text
    known = [
        (i, key, 1 if key in INT_FIELDS else 2 if key in FLOAT_FIELDS else 0)
        for i, key in enumerate(header)
        if key in KNOWN_COLUMNS
    ]
    extra_cols = [(i, key) for i, key in enumerate(header) if key not in KNOWN_COLUMNS]
    rows: list[CsvRow] = []
    append = rows.append
    checked: set[tuple[Any, ...]] = set()
    for line, row in cells:
        where = f"{name} line {line}"
        if len(row) > width:
            raise InvalidInputError("csv", f"{where}: more fields than header columns")
        if len(row) < width:
            row = row + [None] * (width - len(row))
        vals: dict[str, Any] = {}
        for i, key, kind in known:
            text = row[i]
            if text is not None and (text := text.strip()):
                try:  # the common cases inline; "1e6", "128.0" and bad cells take _number's path
                    value = text if kind == 0 else int(text) if kind == 1 else float(text)
                except ValueError:
                    value = _number(text, key, where)
                if kind == 2 and not isfinite(value):  # "nan", "inf"
                    value = _number(text, key, where)
                vals[key] = value
        workload, gpu, measured = _workload_from_values(vals, where, checked)
        extra = {key: row[i] for i, key in extra_cols} if extra_cols else {}
        append(CsvRow(line, workload, gpu, measured, extra))
    return rows
