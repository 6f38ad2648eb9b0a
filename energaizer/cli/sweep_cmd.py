"""``energaizer sweep``: energy vs SM clock and vs power limit; names the energy-optimal settings."""

from __future__ import annotations

from typing import Annotated

import typer

from energaizer.cli.common import (
    CatalogOpt,
    JsonOpt,
    ProfileOpt,
    fmt_energy,
    fmt_seconds,
    keep_ids,
    load_catalogs,
    number_option,
    output_console,
    print_json,
)
from energaizer.cli.estimate_cmd import (
    Attention,
    AttentionOpt,
    BatchSizeOpt,
    DataParallelOpt,
    Execution,
    ExecutionOpt,
    ExpertParallelOpt,
    GlobalBatchSizeOpt,
    InputTokensOpt,
    OutputTokensOpt,
    Precision,
    RequestsOpt,
    SequenceLengthOpt,
    StepsOpt,
    Task,
    TensorParallelOpt,
    TokensOpt,
    build_workload,
)


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        gpu: Annotated[str, typer.Option(help="GPU id (see `energaizer gpus`)")],
        model: Annotated[str | None, typer.Option(help="catalog model (see `energaizer models`)")] = None,
        gpu_count: Annotated[int, typer.Option(help="GPUs per replica")] = 1,
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
        tensor_parallel: TensorParallelOpt = None,
        expert_parallel: ExpertParallelOpt = None,
        data_parallel: DataParallelOpt = None,
        attention: AttentionOpt = Attention.auto,
        execution: ExecutionOpt = Execution.auto,
        points: Annotated[int, typer.Option(help="settings per sweep", min=2, max=200)] = 12,
        max_slowdown: Annotated[
            float,
            number_option(
                help="allowed time increase for the recommendation, e.g. 0.1 (10 %)",
                ge=0,
                le=10,  # energaizer.whatif.MAX_SLOWDOWN_LIMIT (not imported here: numpy at every --help)
            ),
        ] = 0.1,
        json_out: JsonOpt = False,
        profile: ProfileOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Energy vs SM clock and vs power limit for one workload on one GPU type."""
        from energaizer.whatif import least_energy
        from energaizer.whatif import sweep as run_sweep

        load_catalogs(catalog)
        base = build_workload(
            model=model,
            task=task,
            precision=precision,
            gpu_count=gpu_count,
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            batch_size=batch_size,
            tokens=tokens,
            steps=steps,
            global_batch_size=global_batch_size,
            sequence_length=sequence_length,
            tensor_parallel=tensor_parallel,
            expert_parallel=expert_parallel,
            data_parallel=data_parallel,
            attention=attention,
            execution=execution,
        )
        res = run_sweep(base, gpu, points=points, profile=profile)

        def rows(points_, key):
            return [
                {
                    key: p.setting,
                    "energy_joules": p.energy_joules,
                    "duration_seconds": p.duration_seconds,
                    "average_power_watts": p.average_power_watts,
                }
                for p in points_
            ]

        result = {
            "gpu": res.gpu,
            "clock_sweep": rows(res.clock, "frequency_mhz"),
            "power_limit_sweep": rows(res.power_limit, "power_limit_w"),
        }
        names = (
            "energy_optimal_frequency_mhz",
            "recommended_frequency_mhz",
            "energy_optimal_power_limit_w",
            "recommended_power_limit_w",
        )
        result.update(feasible=res.feasible, reason=res.reason)
        if not res.feasible:  # no setting runs it: its figures are NaN, no setting is optimal
            result.update(dict.fromkeys(names))
        else:
            fastest = res.fastest_duration_seconds
            settings = (
                *least_energy(res.clock, max_slowdown, fastest),
                *least_energy(res.power_limit, max_slowdown, fastest),
            )
            result.update(zip(names, (p.setting for p in settings), strict=True))
        if json_out:
            print_json(result)
            return
        from rich.markup import escape
        from rich.table import Table

        console = output_console()
        if not res.feasible:
            console.print(escape(f"{res.gpu} cannot run this workload at any setting: {res.reason}"))
            return
        spec_id = res.gpu
        for name, key, unit in (
            ("clock_sweep", "frequency_mhz", "MHz"),
            ("power_limit_sweep", "power_limit_w", "W"),
        ):
            t = Table(title=escape(f"{spec_id}: {name.replace('_', ' ')}"))
            for col in (unit, "energy", "time", "avg power"):
                t.add_column(col, justify="right")
            for x in result[name]:
                t.add_row(
                    f"{x[key]:.0f}",
                    fmt_energy(x["energy_joules"]),
                    fmt_seconds(x["duration_seconds"]),
                    f"{x['average_power_watts']:.0f} W",
                )
            console.print(keep_ids(t))
        console.print(
            f"energy-optimal clock {result['energy_optimal_frequency_mhz']:.0f} MHz "
            f"(within {max_slowdown:.0%} of fastest: {result['recommended_frequency_mhz']:.0f} MHz); "
            f"energy-optimal power limit {result['energy_optimal_power_limit_w']:.0f} W "
            f"(within {max_slowdown:.0%}: {result['recommended_power_limit_w']:.0f} W)"
        )
