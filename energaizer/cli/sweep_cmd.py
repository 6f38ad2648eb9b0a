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
    load_catalogs,
    number_option,
    print_json,
)
from energaizer.cli.estimate_cmd import (
    BatchSizeOpt,
    GlobalBatchSizeOpt,
    InputTokensOpt,
    OutputTokensOpt,
    Precision,
    RequestsOpt,
    SequenceLengthOpt,
    StepsOpt,
    Task,
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
        points: Annotated[int, typer.Option(help="settings per sweep", min=2, max=200)] = 12,
        max_slowdown: Annotated[
            float,
            number_option(help="allowed time increase for the recommendation, e.g. 0.1 (10 %)", ge=0, le=100),
        ] = 0.1,
        json_out: JsonOpt = False,
        profile: ProfileOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Energy vs SM clock and vs power limit for one workload on one GPU type."""
        import numpy as np

        from energaizer.catalog import get_gpu
        from energaizer.estimator import estimate_pairs

        load_catalogs(catalog)
        spec = get_gpu(gpu)
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
        )
        f_lo = spec.min_clock_mhz or 0.25 * spec.max_clock_mhz
        clocks = np.linspace(max(f_lo, 0.3 * spec.max_clock_mhz), spec.max_clock_mhz, points)
        lim_lo = spec.power_limit_min_w or 0.3 * spec.tdp_w
        limits = np.linspace(lim_lo, spec.power_limit_default_w, points)
        variants = [base.model_copy(update={"frequency_mhz": float(f)}) for f in clocks]
        variants += [base.model_copy(update={"power_limit_w": float(w)}) for w in limits]
        res = estimate_pairs(variants, [spec] * len(variants), profile=profile)
        n = len(clocks)
        result = {"gpu": spec.id, "clock_sweep": [], "power_limit_sweep": []}
        for i in range(len(variants)):
            item = {
                "energy_joules": float(res.energy_joules[i]),
                "duration_seconds": float(res.duration_seconds[i]),
                "average_power_watts": float(res.average_power_watts[i]),
            }
            if i < n:
                result["clock_sweep"].append({"frequency_mhz": float(clocks[i]), **item})
            else:
                result["power_limit_sweep"].append({"power_limit_w": float(limits[i - n]), **item})

        def best(items, key):
            t_fast = min(x["duration_seconds"] for x in items)
            ok = [x for x in items if x["duration_seconds"] <= t_fast * (1 + max_slowdown)]
            return min(items, key=lambda x: x["energy_joules"])[key], min(
                ok, key=lambda x: x["energy_joules"]
            )[key]

        result["energy_optimal_frequency_mhz"], result["recommended_frequency_mhz"] = best(
            result["clock_sweep"], "frequency_mhz"
        )
        result["energy_optimal_power_limit_w"], result["recommended_power_limit_w"] = best(
            result["power_limit_sweep"], "power_limit_w"
        )
        if json_out:
            print_json(result)
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        for name, key, unit in (
            ("clock_sweep", "frequency_mhz", "MHz"),
            ("power_limit_sweep", "power_limit_w", "W"),
        ):
            t = Table(title=f"{spec.id}: {name.replace('_', ' ')}")
            for col in (unit, "energy", "time", "avg power"):
                t.add_column(col, justify="right")
            for x in result[name]:
                t.add_row(
                    f"{x[key]:.0f}",
                    fmt_energy(x["energy_joules"]),
                    fmt_seconds(x["duration_seconds"]),
                    f"{x['average_power_watts']:.0f} W",
                )
            console.print(t)
        console.print(
            f"energy-optimal clock {result['energy_optimal_frequency_mhz']:.0f} MHz "
            f"(within {max_slowdown:.0%} of fastest: {result['recommended_frequency_mhz']:.0f} MHz); "
            f"energy-optimal power limit {result['energy_optimal_power_limit_w']:.0f} W "
            f"(within {max_slowdown:.0%}: {result['recommended_power_limit_w']:.0f} W)"
        )
