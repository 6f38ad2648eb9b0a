"""Job traces: a CSV of submitted jobs -> columnar arrays the simulator runs on.

Each row is a job submitted at ``submit_time_s`` (seconds, any origin), optionally with
``job_id`` (unique) and ``deadline_s`` (seconds after submission by which it must finish; GPU types that
would run it longer are infeasible for it). The work is given either

* by the workload columns of contract section 3 (``model, gpu_count, precision, task, requests,
  input_tokens, output_tokens, batch_size, tokens, steps, global_batch_size, sequence_length``,
  or architecture columns): estimated on every pool type as is; or
* by ``gpu_count`` and ``duration_s``: the job ran ``duration_s`` seconds on the reference GPU
  (column ``reference_gpu``, else ``--reference-gpu``). Its kind and model are not known, so it is
  a training job (or ``task``) of a template model drawn for its GPU count with the seed and its
  ``job_id`` (not its row: the row order does not change the plan);
  its time and energy on every type are the template's, scaled so that the time on the reference
  GPU equals ``duration_s``.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from energaizer.errors import InvalidInputError
from energaizer.workload import Workload

DEFAULT_REFERENCE_GPU = "a100-sxm4-80gb"
MAX_TIME_S = 1e10

# Template models for jobs given only as GPU count + duration (training, fine-tuning sizes), by
# the smallest GPU count they are used for; each fits an 80 GB reference GPU at that count.
TEMPLATE_MODELS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, ("gpt2", "bert-large", "opt-1.3b", "qwen2-1.5b")),
    (2, ("opt-1.3b", "qwen2-1.5b")),
    (4, ("llama-3.1-8b", "mistral-7b-v0.3", "qwen3-8b")),
)
TEMPLATE_STEPS = 100
TEMPLATE_SEQUENCE = 2048


def template_models(gpu_count: int) -> tuple[str, ...]:
    chosen = TEMPLATE_MODELS[0][1]
    for min_gpus, models in TEMPLATE_MODELS:
        if gpu_count >= min_gpus:
            chosen = models
    return chosen


def template_workload(model: str, gpu_count: int, task: str = "training") -> Workload:
    """The stand-in workload for a duration-only job (its size is rescaled to the duration)."""
    if task == "inference":
        return Workload(
            model=model,
            gpu_count=gpu_count,
            inference={"requests": 1000, "input_tokens": 1024, "output_tokens": 128, "batch_size": 32},
        )
    return Workload(
        model=model,
        task="training",
        gpu_count=gpu_count,
        training={
            "steps": TEMPLATE_STEPS,
            "global_batch_size": 16 * gpu_count,
            "sequence_length": TEMPLATE_SEQUENCE,
        },
    )


@dataclass
class Trace:
    """Columnar jobs. ``workload[j]`` indexes ``workloads`` (distinct workloads, estimated once per
    pool type); ``ref_duration[j]`` is NaN for workload-column jobs, else the measured duration on
    ``ref_gpu[j]`` that rescales the template."""

    job_ids: list[str]
    submit: np.ndarray
    gpu_count: np.ndarray
    deadline: np.ndarray  # NaN = none
    workload: np.ndarray
    ref_duration: np.ndarray
    ref_gpu: list[str]
    kind: list[str]
    model: list[str]
    workloads: list[Workload]
    assumptions: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.job_ids)

    def sorted_by_submit(self) -> Trace:
        """Jobs by submission time, simultaneous ones by job id: a trace's row order does not change
        the plan (the FIFO queue and first-fit's tie-breaks see the same order)."""
        order = np.lexsort((np.asarray(self.job_ids, dtype=str), self.submit))
        if np.all(order == np.arange(len(order))):
            return self
        return self.subset(order)

    def subset(self, idx: np.ndarray) -> Trace:
        idx = np.asarray(idx, dtype=np.int64)
        return Trace(
            job_ids=[self.job_ids[i] for i in idx],
            submit=self.submit[idx],
            gpu_count=self.gpu_count[idx],
            deadline=self.deadline[idx],
            workload=self.workload[idx],
            ref_duration=self.ref_duration[idx],
            ref_gpu=[self.ref_gpu[i] for i in idx],
            kind=[self.kind[i] for i in idx],
            model=[self.model[i] for i in idx],
            workloads=self.workloads,
            assumptions=list(self.assumptions),
            source=self.source,
        )


class TraceBuilder:
    """Accumulates jobs, deduplicating workloads; used by the CSV reader and the demo generator."""

    def __init__(
        self, *, seed: int = 0, reference_gpu: str = DEFAULT_REFERENCE_GPU, source: str = ""
    ) -> None:
        from energaizer.catalog import get_gpu

        self.reference_gpu = get_gpu(reference_gpu).id
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.source = source
        self.assumptions: list[str] = []
        self._keys: dict[str, int] = {}
        self.workloads: list[Workload] = []
        self.job_ids: list[str] = []
        self.submit: list[float] = []
        self.gpu_count: list[int] = []
        self.deadline: list[float] = []
        self.workload: list[int] = []
        self.ref_duration: list[float] = []
        self.ref_gpu: list[str] = []
        self.kind: list[str] = []
        self.model: list[str] = []
        self.templated = 0
        self._fits: dict[tuple[str, int, str, str], bool] = {}

    def _intern(self, w: Workload) -> int:
        key = w.model_dump_json()
        idx = self._keys.get(key)
        if idx is None:
            idx = self._keys[key] = len(self.workloads)
            self.workloads.append(w)
        return idx

    def add_workload(self, job_id: str, submit: float, w: Workload, deadline: float = math.nan) -> None:
        self._add(job_id, submit, w.gpu_count, deadline, self._intern(w), math.nan, self.reference_gpu)
        self.kind.append(w.task)
        self.model.append(w.model_name)

    def add_duration(
        self,
        job_id: str,
        submit: float,
        gpu_count: int,
        duration: float,
        deadline: float = math.nan,
        ref_gpu: str | None = None,
        task: str = "training",
        model: str | None = None,
        draw_key: str | None = None,
    ) -> None:
        """A duration-only job; without ``model`` its template is drawn with the seed: from the
        builder's sequence, or, with ``draw_key`` (a trace row's job id), from the seed and that key
        alone, so that the same job gets the same template wherever its row is in the file."""
        if model is None:
            options = self._templates(gpu_count, task, ref_gpu or self.reference_gpu)
            if draw_key is None:
                pick = int(self.rng.integers(len(options)))
            else:
                pick = _keyed_index(self.seed, draw_key, len(options))
            model = options[pick]
            self.templated += 1
        w = template_workload(model, gpu_count, task)
        self._add(
            job_id, submit, gpu_count, deadline, self._intern(w), duration, ref_gpu or self.reference_gpu
        )
        self.kind.append(task)
        self.model.append(w.model_name)

    def _templates(self, gpu_count: int, task: str, gpu: str) -> tuple[str, ...]:
        """The templates for ``gpu_count`` that run on the reference GPU; where none does (8B models'
        training on 4 x 32 GB), those of the largest smaller tier that do; else the count's own (the job
        then runs on no pool, and the plan says why)."""
        tiers = [models for min_gpus, models in reversed(TEMPLATE_MODELS) if gpu_count >= min_gpus]
        for models in tiers:
            fitting = tuple(m for m in models if self._fits_reference(m, gpu_count, task, gpu))
            if fitting:
                return fitting
        return template_models(gpu_count)

    def _fits_reference(self, model: str, gpu_count: int, task: str, gpu: str) -> bool:
        """Whether a template runs on the job's reference GPU: a template that does not fit there (a
        1.5B-parameter model's training on a 16 GB T4) cannot be scaled to the job's duration on it."""
        key = (model, gpu_count, task, gpu)
        if key not in self._fits:
            from energaizer.estimator import estimate_pairs

            batch = estimate_pairs([template_workload(model, gpu_count, task)], [gpu])
            self._fits[key] = bool(batch.feasible[0])
        return self._fits[key]

    def _add(
        self, job_id: str, submit: float, gpus: int, deadline: float, widx: int, ref_dur: float, ref_gpu: str
    ) -> None:
        self.job_ids.append(job_id)
        self.submit.append(submit)
        self.gpu_count.append(gpus)
        self.deadline.append(deadline)
        self.workload.append(widx)
        self.ref_duration.append(ref_dur)
        self.ref_gpu.append(ref_gpu)

    def build(self) -> Trace:
        if self.templated:
            self.assumptions.append(
                f"{self.templated} jobs give only GPU count and duration: each is a training job "
                "(or its task) of a template model drawn with the seed (and, in a trace file, its "
                "job_id) for its GPU count, among those "
                "that run on its reference GPU (else a smaller GPU count's) "
                f"({'; '.join(f'>={g} GPUs: ' + ', '.join(m) for g, m in TEMPLATE_MODELS)}), "
                f"rescaled to its duration on the reference GPU ({self.reference_gpu} unless the "
                "row names one)"
            )
        trace = Trace(
            job_ids=self.job_ids,
            submit=np.asarray(self.submit, dtype=float),
            gpu_count=np.asarray(self.gpu_count, dtype=np.int64),
            deadline=np.asarray(self.deadline, dtype=float),
            workload=np.asarray(self.workload, dtype=np.int64),
            ref_duration=np.asarray(self.ref_duration, dtype=float),
            ref_gpu=self.ref_gpu,
            kind=self.kind,
            model=self.model,
            workloads=self.workloads,
            assumptions=self.assumptions,
            source=self.source,
        )
        return trace.sorted_by_submit()


def _keyed_index(seed: int, key: str, n: int) -> int:
    """A draw in ``range(n)`` that depends only on ``seed`` and ``key`` (stable across runs)."""
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def _float(raw: Mapping[str, str | None], key: str, where: str, *, required: bool = False) -> float:
    text = (raw.get(key) or "").strip()
    if not text:
        if required:
            raise InvalidInputError(key, f"{where}: missing")
        return math.nan
    try:
        x = float(text)
    except ValueError:
        raise InvalidInputError(key, f"{where}: {text!r} is not a number") from None
    if not math.isfinite(x) or x < 0 or x > MAX_TIME_S:
        raise InvalidInputError(key, f"{where}: {text!r} must be a time in [0, {MAX_TIME_S:g}] seconds")
    return x


WORK_KEYS = ("model", "layers", "hidden")


def add_csv_row(builder: TraceBuilder, raw: Mapping[str, str | None], where: str, index: int) -> None:
    """One trace row (either form) into ``builder``; errors name the column and line."""
    from energaizer.io.workload_csv import row_to_workload

    submit = _float(raw, "submit_time_s", where, required=True)
    deadline = _float(raw, "deadline_s", where)
    if deadline == 0:
        raise InvalidInputError("deadline_s", f"{where}: must be > 0")
    job_id = (raw.get("job_id") or "").strip() or f"job-{index}"
    if any((raw.get(k) or "").strip() for k in WORK_KEYS):
        if (raw.get("duration_s") or "").strip():  # two sizes for one job: which one is meant?
            raise InvalidInputError(
                "duration_s",
                f"{where}: a row gives its work as workload columns (model, ...) or as gpu_count and "
                "duration_s, not both (leave one empty)",
            )
        cells = {k: v for k, v in raw.items() if k is not None and v is not None}
        cells["gpu"] = builder.reference_gpu  # the trace has no GPU column: pools decide
        workload, _, _ = row_to_workload(cells, where)
        if workload.architecture is None and workload.model is not None:
            _check_model(workload.model, where)
        builder.add_workload(job_id, submit, workload, deadline)
        return
    duration = _float(raw, "duration_s", where)
    if math.isnan(duration):
        raise InvalidInputError(
            "duration_s", f"{where}: give workload columns (model, ...) or gpu_count and duration_s"
        )
    if duration <= 0:
        raise InvalidInputError("duration_s", f"{where}: must be > 0")
    count_text = (raw.get("gpu_count") or "1").strip()
    try:
        gpus = int(float(count_text))
    except ValueError:
        raise InvalidInputError("gpu_count", f"{where}: {count_text!r} is not a whole number") from None
    if not 1 <= gpus <= 65_536 or gpus != float(count_text):
        raise InvalidInputError("gpu_count", f"{where}: {count_text!r} must be a whole number in [1, 65536]")
    task = (raw.get("task") or "training").strip().lower()
    if task not in ("training", "inference"):
        raise InvalidInputError("task", f"{where}: {task!r}", ["inference", "training"])
    ref = (raw.get("reference_gpu") or "").strip() or None
    if ref is not None:
        from energaizer.catalog import get_gpu
        from energaizer.errors import UnknownNameError

        try:
            ref = get_gpu(ref).id
        except UnknownNameError as exc:
            raise InvalidInputError("reference_gpu", f"{where}: unknown GPU {ref!r}", exc.allowed) from None
    builder.add_duration(job_id, submit, gpus, duration, deadline, ref, task, draw_key=job_id)


def _check_model(name: str, where: str) -> None:
    from energaizer.catalog import get_model
    from energaizer.errors import UnknownNameError

    try:
        get_model(name)
    except UnknownNameError as exc:
        raise InvalidInputError(
            "model", f"{where}: unknown model {name!r} (see `energaizer models`)"
        ) from exc


# The unified columns of published cluster traces (``../shared/traces/README.md``): one row per pod or
# instance, CPU-only ones and ones still running at the trace's end included.
CLUSTER_TRACE_COLUMNS = ("start_time_s", "end_time_s", "duration_s", "gpu_count", "gpu_type", "job_kind")


# Every column a trace's rows are read by (besides the workload CSV's): one in other letter case is an error.
TRACE_COLUMNS = frozenset(
    (
        "submit_time_s",
        "job_id",
        "deadline_s",
        "duration_s",
        "reference_gpu",
        "task",
        *CLUSTER_TRACE_COLUMNS,
        "wait_s",
        "censored_at_trace_end",
        "model_hint",
    )
)


def _is_zero(text: str) -> bool:
    """An empty cell or a zero however written (``0``, ``0.0``, ``0e0``); anything else, a bad number
    included, is left to the reader, which names it with its line."""
    try:
        return not text or float(text) == 0
    except ValueError:
        return False


def is_cluster_trace(header: Sequence[str]) -> bool:
    return all(c in header for c in CLUSTER_TRACE_COLUMNS)


def _cluster_row(raw: Mapping[str, str | None], skipped: dict[str, int]) -> Mapping[str, str | None] | None:
    """A cluster-trace row as a duration job, or None (counted in ``skipped``) where it is not one:
    no GPU (a CPU-only pod), a duration cut off by the trace's end, or no observed submission or end.
    ``job_kind`` gives the task, ``gpu_type`` the reference GPU where it names one catalog GPU."""
    cell = {k: (v or "").strip() for k, v in raw.items() if k is not None}
    if _is_zero(cell.get("gpu_count", "")):
        skipped["without GPUs"] += 1
        return None
    if cell.get("censored_at_trace_end") == "1":
        skipped["still running at the trace's end (duration unknown)"] += 1
        return None
    if not cell.get("submit_time_s") or not cell.get("duration_s"):
        skipped["without an observed submission or end"] += 1
        return None
    try:
        if float(cell["duration_s"]) == 0:
            skipped["ending in the second they started"] += 1
            return None
    except ValueError:
        pass  # reported by the reader with its line
    row = {
        k: cell[k] for k in ("job_id", "submit_time_s", "gpu_count", "duration_s", "deadline_s") if k in cell
    }
    if cell.get("job_kind") in ("inference", "training"):
        row["task"] = cell["job_kind"]
    from energaizer.catalog import get_gpu
    from energaizer.errors import UnknownNameError

    ids = set()
    for option in filter(None, cell.get("gpu_type", "").split("|")):
        try:
            ids.add(get_gpu(option).id)
        except UnknownNameError:
            ids.add("")
    if len(ids) == 1 and "" not in ids:
        row["reference_gpu"] = ids.pop()
    return row


def read_trace_rows(
    rows: Iterable[Mapping[str, str | None]],
    builder: TraceBuilder,
    name: str,
    *,
    cluster: bool = False,
    line: Callable[[], int] | None = None,
) -> Trace:
    """Trace rows into ``builder``; errors name the file's line (``line()``, the reader's line number
    after each row; else the header plus the rows so far). ``cluster``: rows of a published cluster
    trace (:data:`CLUSTER_TRACE_COLUMNS`): the pods that are not GPU jobs with an observed duration
    are left out and counted in the trace's assumptions."""
    from collections import Counter

    skipped: Counter[str] = Counter()
    line_of_job: dict[str, int] = {}  # job_id -> the line that gave it (the plan reports jobs by id)
    n = added = 0
    for n, raw in enumerate(rows, start=1):
        row = _cluster_row(raw, skipped) if cluster else raw
        if row is not None:
            at = line() if line is not None else n + 1
            job_id = (row.get("job_id") or "").strip()
            if job_id:
                if job_id in line_of_job:
                    raise InvalidInputError(
                        "job_id",
                        f"{name} line {at}: {job_id!r} is also the job_id of line {line_of_job[job_id]}; "
                        "each job needs its own",
                    )
                line_of_job[job_id] = at
            add_csv_row(builder, row, f"{name} line {at}", n)
            added += 1
    if added == 0:
        why = f" ({n} rows: {', '.join(f'{v} {k}' for k, v in skipped.items())})" if skipped else ""
        raise InvalidInputError("trace", f"{name} has no jobs{why}")
    if skipped:
        builder.assumptions.append(
            f"{name}: a cluster trace; {sum(skipped.values())} of its {n} rows are not GPU jobs with an "
            f"observed duration and are left out: {', '.join(f'{v} {k}' for k, v in skipped.items())}"
        )
    return builder.build()


def read_trace(
    path: str | Path, *, seed: int = 0, reference_gpu: str = DEFAULT_REFERENCE_GPU, limit: int | None = None
) -> Trace:
    """Read a trace CSV (see the module docstring); ``limit`` keeps the first N rows."""
    from energaizer.files import bounded_lines, not_utf8, open_text, table_header
    from energaizer.io.workload_csv import KNOWN_COLUMNS

    name = str(path)
    handle = open_text(path, "trace")
    with handle:
        try:
            reader = csv.DictReader(bounded_lines(handle, name, "trace"))
            if reader.fieldnames:
                reader.fieldnames = table_header(list(reader.fieldnames), name, TRACE_COLUMNS | KNOWN_COLUMNS)
            header = reader.fieldnames or []
            if "submit_time_s" not in header:
                raise InvalidInputError(
                    "submit_time_s", f"{name}: missing column (header: {', '.join(header[:12]) or 'empty'})"
                )
            builder = TraceBuilder(seed=seed, reference_gpu=reference_gpu, source=name)
            rows: Iterable[Mapping[str, str | None]] = reader
            if limit is not None:
                rows = (r for i, r in enumerate(reader) if i < limit)
            return read_trace_rows(
                rows, builder, name, cluster=is_cluster_trace(header), line=lambda: reader.line_num
            )
        except csv.Error as exc:
            raise InvalidInputError("trace", f"{name}: malformed CSV ({exc})") from None
        except UnicodeDecodeError:
            raise not_utf8(name, "trace") from None


def gpu_rows_of_alibaba(
    rows: Iterable[Mapping[str, str]], spec_to_gpu: Mapping[str, str] | None = None
) -> Sequence[Mapping[str, str]]:
    """Alibaba 2023 pod rows that ran on GPUs with a known duration (for replaying the raw trace).
    With ``spec_to_gpu`` (the pod's ``gpu_spec`` -> catalog GPU id), a row whose spec is in it
    names that GPU as its ``reference_gpu`` (else the plan's default reference)."""
    out = []
    for r in rows:
        try:
            gpus = int(r.get("gpu_count") or 0)
            dur = float(r.get("duration_s") or "nan")
        except ValueError:
            continue
        if gpus > 0 and dur > 0 and r.get("censored_at_trace_end") != "1":
            row = {
                "job_id": r["job_id"],
                "submit_time_s": r["submit_time_s"],
                "gpu_count": str(gpus),
                "duration_s": r["duration_s"],
            }
            if spec_to_gpu is not None:
                row["reference_gpu"] = spec_to_gpu.get((r.get("gpu_spec") or "").strip(), "")
            out.append(row)
    return out
