"""``energaizer estimate``: one workload on one or more GPU types, or every row of a workload CSV."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from energaizer.cli.common import (
    CatalogOpt,
    JsonOpt,
    ProfileOpt,
    WideOpt,
    dumps_json,
    fmt_energy,
    fmt_seconds,
    given_on_command_line,
    join_json_arrays,
    load_catalogs,
    number_option,
    print_json,
)


class Precision(StrEnum):
    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    int8 = "int8"
    fp4 = "fp4"


class Task(StrEnum):
    inference = "inference"
    training = "training"


class Attention(StrEnum):
    auto = "auto"
    flash = "flash"
    eager = "eager"


class Execution(StrEnum):
    auto = "auto"
    eager = "eager"
    graphs = "graphs"
    legacy_engine = "legacy-engine"


def build_workload(
    *,
    model,
    task,
    precision,
    gpu_count,
    requests,
    input_tokens,
    output_tokens,
    batch_size,
    tokens,
    steps,
    global_batch_size,
    sequence_length,
    model_file=None,
    tensor_parallel=None,
    expert_parallel=None,
    data_parallel=None,
    frequency_mhz=None,
    power_limit_w=None,
    attention=Attention.auto,
    execution=Execution.auto,
    recompute=False,
    prompt_logits=False,
):
    """CLI flags -> Workload (validated by pydantic; errors name the flag)."""
    from pydantic import ValidationError

    from energaizer.errors import InvalidInputError
    from energaizer.workload import Workload

    sizes = {
        "tokens": tokens,
        "steps": steps,
        "global_batch_size": global_batch_size,
        "sequence_length": sequence_length,
        "requests": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "batch_size": batch_size,
    }
    if (model is None) == (model_file is None):
        raise InvalidInputError("model", "give exactly one of --model NAME or --model-file FILE")
    spec: dict = {
        "task": task.value,
        "precision": precision.value,
        "gpu_count": gpu_count,
        "attention": attention.value,
        "execution": execution.value,
    }
    if model_file is not None:
        spec["architecture"] = read_model_file(model_file)
    else:
        spec["model"] = model
    for key, val in (
        ("tensor_parallel", tensor_parallel),
        ("expert_parallel", expert_parallel),
        ("data_parallel", data_parallel),
        ("frequency_mhz", frequency_mhz),
        ("power_limit_w", power_limit_w),
    ):
        if val is not None:
            spec[key] = val
    if task is Task.inference:
        given = [f for f, v in _TRAINING_FLAGS.items() if sizes[v] is not None]
        if given or recompute:
            flag = given[0] if given else "--recompute"
            raise InvalidInputError(
                flag, "is a training size: add --task training (or drop it for inference)"
            )
        spec["inference"] = {
            k: v
            for k, v in (
                ("requests", requests),
                ("input_tokens", input_tokens),
                ("output_tokens", output_tokens),
                ("batch_size", batch_size),
            )
            if v is not None
        }
        if prompt_logits:
            spec["inference"]["prompt_logits"] = True
    else:
        given = [f for f, v in _INFERENCE_FLAGS.items() if sizes[v] is not None]
        if prompt_logits:
            raise InvalidInputError("--prompt-logits", "is for inference: training projects every token")
        if given:
            raise InvalidInputError(given[0], "is an inference size: drop it for --task training")
        if tokens is None and steps is None:
            raise InvalidInputError("tokens", "training needs --tokens N or --steps N")
        spec["training"] = {
            k: v
            for k, v in (
                ("tokens", tokens),
                ("steps", steps),
                ("global_batch_size", global_batch_size),
                ("sequence_length", sequence_length),
            )
            if v is not None
        }
        if recompute:
            spec["training"]["activation_recomputation"] = True
    try:
        workload = Workload.model_validate(spec)
    except ValidationError as exc:
        raise _flag_error(exc, model_file) from None
    from energaizer.io.layout import architecture_of, check_layout, check_prompt_logits

    check_layout(workload, flags=True)
    check_prompt_logits(workload, flags=True)
    arch = architecture_of(workload)
    if arch is not None and arch.arch_type != "decoder" and output_tokens:
        raise InvalidInputError(
            "--output-tokens",
            f"{workload.model_name} is {'a CNN' if arch.arch_type == 'cnn' else 'an encoder'} model: it generates no tokens "
            "(leave --output-tokens out, or give 0)",
        )
    return workload


# flag -> build_workload argument
_TRAINING_FLAGS = {
    "--tokens": "tokens",
    "--steps": "steps",
    "--global-batch-size": "global_batch_size",
    "--sequence-length": "sequence_length",
}
_INFERENCE_FLAGS = {
    "--requests": "requests",
    "--input-tokens": "input_tokens",
    "--output-tokens": "output_tokens",
    "--batch-size": "batch_size",
}
# What the estimate assumes for a size the user did not give (energaizer.workload's defaults; a test
# keeps the two equal). Shown in --help and echoed under the table.
INFERENCE_DEFAULTS = {"requests": 1, "input_tokens": 512, "output_tokens": 256, "batch_size": 1}
TRAINING_DEFAULTS = {"global_batch_size": 256, "sequence_length": 2048}


def _flag_error(exc, model_file):  # type: ignore[no-untyped-def]
    """A Workload ValidationError -> InvalidInputError naming the flag the user typed (and the field)."""
    from energaizer.errors import InvalidInputError, pydantic_location, pydantic_message

    err = exc.errors()[0]
    loc = [str(x) for x in err.get("loc", ())]
    if loc and loc[0] == "architecture":
        where = ".".join(loc[1:]) or "architecture"
        return InvalidInputError("--model-file", f"{model_file}: {where} {pydantic_message(err)}")
    named = pydantic_location(err)
    if len(named) > len(loc):  # a check across fields, its message a sentence naming them
        return InvalidInputError("--" + named[-1].replace("_", "-"), pydantic_message(err))
    if not loc:
        return InvalidInputError("workload", pydantic_message(err))
    return InvalidInputError("--" + loc[-1].replace("_", "-"), f"{loc[-1]} {pydantic_message(err)}")


def read_model_file(path: Path) -> dict:
    import json

    import yaml

    from energaizer.errors import InvalidInputError
    from energaizer.files import load_yaml, read_text, unique_keys

    text = read_text(path, "--model-file", max_bytes=1024 * 1024)
    try:
        data = (
            json.loads(text, object_pairs_hook=unique_keys)
            if path.suffix.lower() == ".json"
            else load_yaml(text)
        )
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        mark = getattr(exc, "problem_mark", None)
        if getattr(exc, "problem", None) and mark is not None:  # YAML: the problem and its line
            first = f"{exc.problem} at line {mark.line + 1}"
        raise InvalidInputError("--model-file", f"{path} is not valid YAML/JSON ({first})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            "--model-file", f"{path} must hold one architecture mapping (layers, hidden, heads, ...)"
        )
    data.setdefault("id", path.stem.lower())
    return data


def render_table(estimates, title: str, *, rows=None, notes=(), wide: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The human table. One workload on several GPUs: sorted by energy, the lowest-energy and the fastest
    feasible GPU marked. ``rows`` (CSV rows, same order as ``estimates``): row number and model columns,
    file order kept. ``wide``: also the clock and the energy breakdown by component. Beyond
    :data:`LONG_TABLE_ROWS` rows, plain columns (:func:`energaizer.cli.common.print_plain_table`)."""
    from energaizer.cli.common import LONG_TABLE_ROWS, print_plain_table

    order = list(range(len(estimates)))
    best = fastest = None
    if rows is None and len(estimates) > 1:
        order.sort(key=lambda i: (not estimates[i].feasible, estimates[i].energy_joules))
        feasible = [i for i in order if estimates[i].feasible]
        if feasible:
            best = feasible[0]
            fastest = min(feasible, key=lambda i: estimates[i].duration_seconds)
    ids = (["line", "model"] if rows is not None else []) + ["GPU"]
    columns = ["feasible", "energy", "time", "avg power", "J/output token"]
    if wide:
        columns += ["clock MHz", "static", "compute", "memory", "comm", "overhead"]
    if best is not None:
        columns.append("best")
    cell_rows = []
    for i in order:
        e = estimates[i]
        b = e.breakdown
        cells = [str(rows[i].line), rows[i].workload.model_name] if rows is not None else []
        cells += [
            e.gpu,
            "yes" if e.feasible else "no",
            fmt_energy(e.energy_joules),
            fmt_seconds(e.duration_seconds),
            f"{e.average_power_watts:,.0f} W" if e.feasible else "-",
            f"{e.energy_per_output_token_joules:.3f}"
            if e.energy_per_output_token_joules is not None
            else "-",
        ]
        if wide:
            cells.append(f"{e.frequency_mhz:,.0f}")
            cells += [
                fmt_energy(b.get(k)) for k in ("static", "compute", "memory", "communication", "overhead")
            ]
        if best is not None:
            marks = [m for m, hit in (("lowest energy", i == best), ("fastest", i == fastest)) if hit]
            cells.append(", ".join(marks))
        cell_rows.append(cells)
    # infeasible, or feasible on an explicit fallback (a precision the GPU cannot run)
    reasons = [
        (f"row {rows[i].line} " if rows is not None else "", estimates[i].gpu, estimates[i].reason)
        for i in order
        if estimates[i].reason
    ]
    headers = [*ids, *columns]
    right = [h == "line" or (h in columns and h != "best") for h in headers]
    if len(cell_rows) > LONG_TABLE_ROWS:
        lines = [*notes, *(f"{where}{gpu}: {reason}" for where, gpu, reason in reasons)]
        print_plain_table(title, headers, cell_rows, right, lines)
        return
    _print_rich_table(title, headers, cell_rows, right, len(ids), best is not None, notes, reasons)


def _print_rich_table(title, headers, cell_rows, right, n_ids, bold_first, notes, reasons) -> None:  # type: ignore[no-untyped-def]
    """``render_table``'s table in a rich box: the ids never cut, the other columns folded to the width."""
    from rich.markup import escape
    from rich.table import Table

    from energaizer.cli.common import id_column, print_tables

    table = Table(title=escape(title))  # a file name, a model id: text, not rich markup
    for j, header in enumerate(headers):
        justify = "right" if right[j] else "left"
        if j < n_ids:
            id_column(table, header, [row[j] for row in cell_rows], justify=justify)
        else:
            table.add_column(header, justify=justify, overflow="fold")
    for k, cells in enumerate(cell_rows):
        table.add_row(*(escape(c) for c in cells), style="bold" if bold_first and k == 0 else None)
    lines = [
        *notes,
        *(f"[yellow]{where}{escape(gpu)}[/]: {escape(reason)}" for where, gpu, reason in reasons),
    ]
    print_tables(table, *lines)


def _defaults_note(task, values: dict, arch_type: str = "decoder") -> str | None:  # type: ignore[no-untyped-def]
    """``defaults: requests 1, batch size 1`` for the sizes the user left out (echoed under the table)."""
    if task is Task.inference:
        used = (
            INFERENCE_DEFAULTS
            if arch_type == "decoder"
            else {"requests": 1, "input_tokens": 512, "batch_size": 1}
        )
        if arch_type == "cnn":
            used = {k: v for k, v in used.items() if k != "input_tokens"}
        left = {k: INFERENCE_DEFAULTS[k] for k in used if values.get(k) is None}
    else:
        left = {k: v for k, v in TRAINING_DEFAULTS.items() if values.get(k) is None}
    if not left:
        return None
    shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in left.items())
    return f"[dim]defaults used (not given): {shown}[/dim]"


def _unique_gpus(names: list[str]):  # type: ignore[no-untyped-def]
    """Catalog specs for ``--gpu`` values ('all' expanded), each GPU once, in the order first named."""
    from energaizer.estimator import resolve_gpus

    seen: dict[str, object] = {}
    for spec in resolve_gpus(names):
        seen.setdefault(spec.id, spec)
    return list(seen.values())


def help_default(text: str, default: object) -> str:
    return f"{text} \\[default: {default}]"


# The workload-size flags, shared by `estimate` and `sweep`.
RequestsOpt = Annotated[
    int | None,
    typer.Option(help=help_default("inference: number of requests", INFERENCE_DEFAULTS["requests"])),
]
InputTokensOpt = Annotated[
    int | None,
    typer.Option(
        help=help_default("inference: prompt tokens per request", INFERENCE_DEFAULTS["input_tokens"])
    ),
]
OutputTokensOpt = Annotated[
    int | None,
    typer.Option(
        help=help_default(
            "inference: generated tokens per request (0 = prefill only)", INFERENCE_DEFAULTS["output_tokens"]
        )
    ),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(help=help_default("inference: max concurrent requests", INFERENCE_DEFAULTS["batch_size"])),
]
TokensOpt = Annotated[float | None, number_option(help="training: total tokens (or --steps)", gt=0)]
StepsOpt = Annotated[int | None, typer.Option(help="training: optimizer steps (or --tokens)")]
GlobalBatchSizeOpt = Annotated[
    int | None,
    typer.Option(help=help_default("training: sequences per step", TRAINING_DEFAULTS["global_batch_size"])),
]
SequenceLengthOpt = Annotated[
    int | None,
    typer.Option(help=help_default("training: tokens per sequence", TRAINING_DEFAULTS["sequence_length"])),
]
TensorParallelOpt = Annotated[
    int | None,
    typer.Option(
        help="TP degree, the rest of the replica's GPUs data parallel (training default: searched per GPU; "
        "inference default: --gpu-count / --data-parallel)"
    ),
]
ExpertParallelOpt = Annotated[
    int | None,
    typer.Option(help="inference: MoE experts placed whole on this many GPUs (1 or --gpu-count)"),
]
DataParallelOpt = Annotated[
    int | None,
    typer.Option(help="inference: data-parallel attention engines (each TP over gpu-count / this)"),
]
AttentionOpt = Annotated[
    Attention,
    typer.Option(help="flash (SDPA/FlashAttention; auto), eager (matmul+softmax kernels, opt-in)"),
]
ExecutionOpt = Annotated[
    Execution,
    typer.Option(
        help="eager (PyTorch dispatch per kernel), graphs (current serving engine), legacy-engine "
        "(vLLM 0.5-style host time per sequence); auto: graphs for inference, eager for training"
    ),
]


def register(app: typer.Typer) -> None:

    @app.command()
    def estimate(
        ctx: typer.Context,
        model: Annotated[
            str | None, typer.Option(help="catalog model (HF id or alias; see `energaizer models`)")
        ] = None,
        model_file: Annotated[Path | None, typer.Option(help="custom architecture (YAML/JSON)")] = None,
        gpu: Annotated[
            list[str] | None,
            typer.Option(
                metavar="ID",
                help="GPU id (repeatable; 'all' = every catalog GPU; see `energaizer gpus`) \\[default: all]",
            ),
        ] = None,
        gpu_count: Annotated[int, typer.Option(help="GPUs per replica (tensor parallel)")] = 1,
        precision: Annotated[Precision, typer.Option()] = Precision.bf16,
        task: Annotated[Task, typer.Option()] = Task.inference,
        requests: RequestsOpt = None,
        input_tokens: InputTokensOpt = None,
        output_tokens: OutputTokensOpt = None,
        batch_size: BatchSizeOpt = None,
        tokens: TokensOpt = None,
        steps: StepsOpt = None,
        global_batch_size: GlobalBatchSizeOpt = None,
        sequence_length: SequenceLengthOpt = None,
        frequency_mhz: Annotated[
            float | None,
            number_option(help="what-if SM clock (default: the GPU's boost clock)", gt=0, le=5000),
        ] = None,
        power_limit_w: Annotated[
            float | None,
            number_option(
                help="what-if power limit per GPU (default: the GPU's default limit)", gt=0, le=5000
            ),
        ] = None,
        tensor_parallel: TensorParallelOpt = None,
        expert_parallel: ExpertParallelOpt = None,
        data_parallel: DataParallelOpt = None,
        attention: AttentionOpt = Attention.auto,
        execution: ExecutionOpt = Execution.auto,
        recompute: Annotated[
            bool, typer.Option("--recompute", help="training: activation recomputation")
        ] = False,
        prompt_logits: Annotated[
            bool,
            typer.Option(
                "--prompt-logits",
                help="inference: project every prompt token onto the vocabulary (a scoring / log-prob "
                "pass, a causal LM's forward()), not only the last",
            ),
        ] = False,
        from_csv: Annotated[Path | None, typer.Option(help="estimate every row of a workload CSV")] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                min=0,
                help="with --from-csv: processes for a large file (0: one per available CPU, at most one "
                "per 2,000 rows) \\[default: 0]",
            ),
        ] = None,
        json_out: JsonOpt = False,
        ops: Annotated[
            bool, typer.Option("--ops", help="with --json: add energy and time per operation (key ops)")
        ] = False,
        wide: WideOpt = False,
        profile: ProfileOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Energy, time and power of a workload on one or more GPU types."""
        if ops and not json_out:
            from energaizer.errors import InvalidInputError

            raise InvalidInputError("--ops", "adds a key to the JSON output: use it with --json")
        if workers is not None and from_csv is None:
            from energaizer.errors import InvalidInputError

            raise InvalidInputError(
                "--workers", "splits a --from-csv file over processes: use it with --from-csv"
            )
        load_catalogs(catalog)
        if from_csv is not None:
            # Every per-row flag named on the command line is refused, also at its default value
            # (`--gpu-count 1` would otherwise be silently ignored while `--gpu-count 2` is refused).
            clash = given_on_command_line(
                ctx,
                "model",
                "model_file",
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
                "tensor_parallel",
                "expert_parallel",
                "data_parallel",
                "attention",
                "execution",
                "recompute",
                "prompt_logits",
            )
            if clash:
                from energaizer.errors import InvalidInputError

                raise InvalidInputError(
                    clash[0],
                    "cannot be combined with --from-csv: each row of the CSV gives its own workload and GPU",
                )
            _estimate_csv(from_csv, json_out, profile, ops, wide, workers or 0)
            return
        from energaizer.estimator import estimate as run_estimate
        from energaizer.io.layout import architecture_of

        wl = build_workload(
            model=model,
            model_file=model_file,
            task=task,
            precision=precision,
            gpu_count=gpu_count,
            tensor_parallel=tensor_parallel,
            expert_parallel=expert_parallel,
            data_parallel=data_parallel,
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            batch_size=batch_size,
            tokens=tokens,
            steps=steps,
            global_batch_size=global_batch_size,
            sequence_length=sequence_length,
            frequency_mhz=frequency_mhz,
            power_limit_w=power_limit_w,
            attention=attention,
            execution=execution,
            recompute=recompute,
            prompt_logits=prompt_logits,
        )
        results = run_estimate(wl, _unique_gpus(gpu or ["all"]), profile=profile)
        if json_out:
            print_json([r.model_dump(mode="json", exclude=None if ops else {"ops"}) for r in results])
            return
        note = _defaults_note(
            task,
            {
                "requests": requests,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "batch_size": batch_size,
                "global_batch_size": global_batch_size,
                "sequence_length": sequence_length,
            },
            getattr(architecture_of(wl), "arch_type", "decoder"),
        )
        render_table(
            results,
            f"{wl.model_name} {wl.task} ({wl.precision}, {wl.gpu_count} GPU/replica)",
            notes=[note] if note else (),
            wide=wide,
        )


def _estimate_csv(
    path: Path, json_out: bool, profile: Path | None, ops: bool = False, wide: bool = False, workers: int = 0
) -> None:
    from energaizer.workers import batch_settings

    with batch_settings():  # a batch of up to millions of rows in the CLI's own process
        _estimate_csv_rows(path, json_out, profile, ops, wide, workers)


def _estimate_csv_rows(
    path: Path, json_out: bool, profile: Path | None, ops: bool, wide: bool, workers: int
) -> None:
    from energaizer.estimator import estimate_csv, estimate_pairs, map_csv
    from energaizer.io.workload_csv import read_workload_csv

    if json_out and ops:  # a part lists its own ops only: the whole batch unites them (0 where unused)
        print_json(estimate_csv(path, profile=profile, workers=workers).to_dicts(ops=True))
        return
    if json_out:  # each worker writes its part's JSON: 20,000 rows' dicts take longer than their estimates
        parts = map_csv(path, lambda batch: dumps_json(batch.to_dicts()), profile=profile, workers=workers)
        sys.stdout.write(join_json_arrays(parts))
        sys.stdout.write("\n")
        return
    rows = read_workload_csv(path)
    batch = estimate_pairs(
        [r.workload for r in rows], [r.gpu for r in rows], profile=profile, workers=workers
    )
    render_table(batch.to_estimates(), f"{path.name}: {len(rows)} rows", rows=rows, wide=wide)
