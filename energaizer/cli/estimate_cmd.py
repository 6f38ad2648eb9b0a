"""``energaizer estimate``: one workload on one or more GPU types, or every row of a workload CSV."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from energaizer.cli.common import (
    CatalogOpt,
    JsonOpt,
    ProfileOpt,
    fmt_energy,
    fmt_seconds,
    load_catalogs,
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
):
    """CLI flags -> Workload (validated by pydantic; errors name the flag's field)."""
    from energaizer.errors import InvalidInputError
    from energaizer.workload import Workload

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
        if any(v is not None for v in (tokens, steps, global_batch_size, sequence_length)):
            raise InvalidInputError("task", "training sizes (--tokens/--steps/...) need --task training")
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
    else:
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
    return Workload.model_validate(spec)


def read_model_file(path: Path) -> dict:
    import json

    import yaml

    from energaizer.errors import InvalidInputError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError("model_file", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInputError(
            "model_file", f"{path} is not valid YAML/JSON ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError("model_file", f"{path} must hold one architecture mapping")
    data.setdefault("id", path.stem.lower())
    return data


def render_table(estimates, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "GPU",
        "feasible",
        "energy",
        "time",
        "avg power",
        "J/output token",
        "clock MHz",
        "static",
        "compute",
        "memory",
        "comm",
        "overhead",
    ):
        table.add_column(col, justify="left" if col == "GPU" else "right")
    for e in estimates:
        b = e.breakdown
        table.add_row(
            e.gpu,
            "yes" if e.feasible else "no",
            fmt_energy(e.energy_joules),
            fmt_seconds(e.duration_seconds),
            f"{e.average_power_watts:,.0f} W" if e.feasible else "-",
            f"{e.energy_per_output_token_joules:.3f}"
            if e.energy_per_output_token_joules is not None
            else "-",
            f"{e.frequency_mhz:,.0f}",
            *(fmt_energy(b.get(k)) for k in ("static", "compute", "memory", "communication", "overhead")),
        )
    console = Console()
    console.print(table)
    for e in estimates:
        if not e.feasible:
            console.print(f"[yellow]{e.gpu}[/]: {e.reason}")


def register(app: typer.Typer) -> None:
    @app.command()
    def estimate(
        model: Annotated[str | None, typer.Option(help="catalog model (HF id or alias)")] = None,
        model_file: Annotated[Path | None, typer.Option(help="custom architecture (YAML/JSON)")] = None,
        gpu: Annotated[
            list[str] | None, typer.Option(help="GPU id (repeatable; 'all' = every catalog GPU)")
        ] = None,
        gpu_count: Annotated[int, typer.Option(help="GPUs per replica (tensor parallel)")] = 1,
        precision: Annotated[Precision, typer.Option()] = Precision.bf16,
        task: Annotated[Task, typer.Option()] = Task.inference,
        requests: Annotated[int | None, typer.Option(help="inference: number of requests")] = None,
        input_tokens: Annotated[int | None, typer.Option(help="inference: prompt tokens per request")] = None,
        output_tokens: Annotated[
            int | None, typer.Option(help="inference: generated tokens (0 = prefill only)")
        ] = None,
        batch_size: Annotated[int | None, typer.Option(help="inference: max concurrent requests")] = None,
        tokens: Annotated[float | None, typer.Option(help="training: total tokens")] = None,
        steps: Annotated[int | None, typer.Option(help="training: optimizer steps")] = None,
        global_batch_size: Annotated[int | None, typer.Option(help="training: sequences per step")] = None,
        sequence_length: Annotated[int | None, typer.Option(help="training: tokens per sequence")] = None,
        frequency_mhz: Annotated[float | None, typer.Option(help="what-if SM clock")] = None,
        power_limit_w: Annotated[float | None, typer.Option(help="what-if power limit per GPU")] = None,
        tensor_parallel: Annotated[
            int | None, typer.Option(help="training: TP degree (rest is data parallel)")
        ] = None,
        expert_parallel: Annotated[
            int | None,
            typer.Option(help="inference: MoE experts placed whole on this many GPUs (1 or --gpu-count)"),
        ] = None,
        data_parallel: Annotated[
            int | None,
            typer.Option(help="inference: data-parallel attention engines (each TP over gpu-count / this)"),
        ] = None,
        attention: Annotated[
            Attention,
            typer.Option(help="flash (SDPA/FlashAttention; auto), eager (matmul+softmax kernels, opt-in)"),
        ] = Attention.auto,
        execution: Annotated[
            Execution,
            typer.Option(
                help="eager (PyTorch dispatch per kernel), graphs (current serving engine), legacy-engine "
                "(vLLM 0.5-style host time per sequence); auto: graphs for inference, eager for training"
            ),
        ] = Execution.auto,
        recompute: Annotated[
            bool, typer.Option("--recompute", help="training: activation recomputation")
        ] = False,
        from_csv: Annotated[Path | None, typer.Option(help="estimate every row of a workload CSV")] = None,
        json_out: JsonOpt = False,
        ops: Annotated[
            bool, typer.Option("--ops", help="with --json: add energy and time per operation (key ops)")
        ] = False,
        profile: ProfileOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Energy, time and power of a workload on one or more GPU types."""
        if ops and not json_out:
            from energaizer.errors import InvalidInputError

            raise InvalidInputError("--ops", "adds a key to the JSON output: use it with --json")
        load_catalogs(catalog)
        if from_csv is not None:
            _estimate_csv(from_csv, json_out, profile, ops)
            return
        from energaizer.estimator import estimate as run_estimate

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
        )
        results = run_estimate(wl, gpu or ["all"], profile=profile)
        if json_out:
            print_json([r.model_dump(mode="json", exclude=None if ops else {"ops"}) for r in results])
        else:
            render_table(results, f"{wl.model_name} {wl.task} ({wl.precision}, {wl.gpu_count} GPU/replica)")


def _estimate_csv(path: Path, json_out: bool, profile: Path | None, ops: bool = False) -> None:
    from energaizer.estimator import estimate_pairs
    from energaizer.io.workload_csv import read_workload_csv

    rows = read_workload_csv(path)
    batch = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=profile)
    if json_out:
        print_json(batch.to_dicts(ops=ops))
    else:
        render_table(batch.to_estimates(), f"{path.name}: {len(rows)} rows")
