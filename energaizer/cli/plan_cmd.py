"""``energaizer plan``: capacity planning / placement simulation over a job trace and node pools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from energaizer.cli.common import CatalogOpt, JsonOpt, ProfileOpt, load_catalogs, number_option, print_json
from energaizer.planner.demo_defaults import DEMO_JOBS, DEMO_LOAD

POLICY_CHOICES = ("energy-aware", "first-fit", "fastest-gpu")


def plan(
    pools_file: Annotated[
        Path | None, typer.Option("--pools", help="node pools YAML: list of {gpu, nodes, gpus_per_node, ...}")
    ] = None,
    trace_file: Annotated[
        Path | None,
        typer.Option(
            "--trace", help="job trace CSV (submit_time_s + workload columns, or gpu_count + duration_s)"
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="built-in demo trace and pools (Alibaba 2023 fit + Azure LLM requests)"),
    ] = False,
    demo_jobs: Annotated[
        int, typer.Option("--demo-jobs", min=1, max=200_000, help="jobs in the demo trace")
    ] = DEMO_JOBS,
    demo_load: Annotated[
        float,
        number_option(
            "--demo-load", ge=0.01, le=10.0, help="demo offered load (fraction of the pools' GPUs)"
        ),
    ] = DEMO_LOAD,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", min=0, max=2**32 - 1, help="seed for the demo trace, template models and tie-breaking"
        ),
    ] = 0,
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="policy to simulate (repeatable; default: all)")
    ] = None,
    add_pool: Annotated[
        list[str] | None,
        typer.Option("--add-pool", help="what-if extra pool GPU:NODESxGPUS, e.g. h100-sxm:8x8 (repeatable)"),
    ] = None,
    power_limit_w: Annotated[
        list[str] | None,
        typer.Option(
            "--power-limit-w",
            help="sweep POOL=W[,W...] (pool name or GPU id; repeatable), one plan per value",
        ),
    ] = None,
    reference_gpu: Annotated[
        str, typer.Option("--reference-gpu", help="GPU the trace's duration_s were measured on")
    ] = "a100-sxm4-80gb",
    price_per_kwh: Annotated[
        float, number_option("--price-per-kwh", ge=0.0, le=1e6, help="energy price per kWh")
    ] = 0.12,
    carbon_g_per_kwh: Annotated[
        float,
        number_option("--carbon-g-per-kwh", ge=0.0, le=1e5, help="grid carbon intensity, g CO2e per kWh"),
    ] = 400.0,
    energy_slack: Annotated[
        float,
        number_option(
            "--energy-slack",
            ge=0.0,
            le=10.0,
            help="energy-aware: accept pools within this fraction of a job's best",
        ),
    ] = 0.05,
    max_wait_seconds: Annotated[
        float,
        number_option(
            "--max-wait-seconds",
            "--max-wait-s",
            ge=0.0,
            allow_inf=True,
            help="energy-aware: a job waits at most this long for its best GPU type, then takes the "
            "best free feasible type (inf = wait for it; deadlines still win)",
        ),
    ] = 900.0,
    fleet_mode: Annotated[
        str,
        typer.Option(
            "--fleet-mode",
            help="what idle GPUs cost: static (always powered) or elastic (nodes scale down after "
            "--idle-timeout-seconds)",
        ),
    ] = "static",
    idle_timeout_seconds: Annotated[
        float,
        number_option(
            "--idle-timeout-seconds",
            ge=0.0,
            le=1e7,
            help="elastic: a node is removed after this long without a job",
        ),
    ] = 600.0,
    exact: Annotated[
        bool, typer.Option("--exact", help="energy-aware: LP rounding / MILP on every batch (slower)")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="use only the first N trace rows")
    ] = None,
    json_out: JsonOpt = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="write per-policy metrics as CSV")] = None,
    plots_dir: Annotated[
        Path | None, typer.Option("--plots", help="write PNG plots into this directory")
    ] = None,
    profile: ProfileOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Simulate placement policies over a job trace on node pools: energy, cost, carbon, waits."""
    from energaizer.errors import InvalidInputError

    load_catalogs(catalog)
    if demo and trace_file is not None:
        raise InvalidInputError("--trace", "give --trace or --demo, not both")
    if demo and limit is not None:
        raise InvalidInputError("--limit", "applies to --trace; for the demo give --demo-jobs N")
    if not demo and trace_file is None:
        raise InvalidInputError("--trace", "missing: give a trace CSV, or --demo for the built-in demo")
    if not demo and pools_file is None:
        raise InvalidInputError("--pools", "missing: give a node pools YAML (or --demo for the demo pools)")
    from energaizer.placement import FLEET_MODES

    if fleet_mode not in FLEET_MODES:
        raise InvalidInputError("--fleet-mode", f"unknown fleet mode {fleet_mode!r}", FLEET_MODES)
    policies = list(dict.fromkeys(policy or POLICY_CHOICES))
    for p in policies:
        if p not in POLICY_CHOICES:
            raise InvalidInputError("--policy", f"unknown policy {p!r}", POLICY_CHOICES)
    _check_outputs(csv_file, plots_dir, {"--trace": trace_file, "--pools": pools_file, "--profile": profile})
    _check_reference_gpu(reference_gpu)

    from energaizer.planner.costs import CostCache
    from energaizer.planner.plan import PlanOptions, run_plan, run_power_sweeps
    from energaizer.planner.pools import (
        default_demo_pools,
        merge_added,
        parse_add_pool,
        parse_power_limits,
        read_pools,
    )

    base_pools = read_pools(pools_file) if pools_file is not None else default_demo_pools()
    pools = merge_added(base_pools, [parse_add_pool(x) for x in add_pool or []])
    limits = parse_power_limits(power_limit_w or [], pools)
    options = PlanOptions(
        policies=policies,
        price_per_kwh=price_per_kwh,
        carbon_g_per_kwh=carbon_g_per_kwh,
        energy_slack=energy_slack,
        max_wait_seconds=max_wait_seconds,
        fleet_mode=fleet_mode,
        idle_timeout_seconds=idle_timeout_seconds,
        exact_placement=exact,
        seed=seed,
    )
    cache = CostCache(_estimator(profile))
    if demo:
        from energaizer.planner.demo import DemoConfig, generate_demo

        # the demo load is relative to the base pools, so --add-pool adds capacity to the same trace
        trace = generate_demo(
            base_pools,
            DemoConfig(jobs=demo_jobs, load=demo_load, seed=seed, reference_gpu=reference_gpu),
            cache,
        )
    else:
        from energaizer.planner.trace import read_trace

        assert trace_file is not None
        trace = read_trace(trace_file, seed=seed, reference_gpu=reference_gpu, limit=limit)

    result = _run_with_progress(
        lambda cb: run_plan(trace, pools, options, cache=cache, progress=cb),
        len(trace),
        policies,
        quiet=json_out,
    )
    sweeps = run_power_sweeps(trace, pools, limits, options, cache=cache) if limits else []

    from energaizer.planner.report import (
        fleet_headline,
        render_sweep_table,
        render_table,
        render_utilisation_table,
        to_json,
        write_csv,
    )

    # a full disk, a read-only file system: found at the write itself, after the checks before the run
    if csv_file is not None:
        try:
            write_csv(csv_file, result, sweeps)
        except OSError as exc:
            raise InvalidInputError("--csv", f"cannot write {csv_file}: {exc.strerror or exc}") from None
    plot_paths = []
    if plots_dir is not None:
        from energaizer.planner.plots import write_plots

        try:
            plot_paths = write_plots(result, plots_dir)
        except OSError as exc:
            where = exc.filename or plots_dir
            raise InvalidInputError("--plots", f"cannot write {where}: {exc.strerror or exc}") from None
    if json_out:
        doc = to_json(result, sweeps, seed=seed)
        doc["plots"] = [str(p) for p in plot_paths]
        print_json(doc)
        return
    from rich.markup import escape

    from energaizer.cli.common import keep_ids, output_console

    console = output_console()
    title = escape(  # a file name and pool names: text, not rich markup
        f"energaizer plan ({fleet_headline(options)}): {len(trace)} jobs from {trace.source} on "
        + ", ".join(f"{p.name} {p.nodes}x{p.gpus_per_node}" for p in pools)
    )
    console.print(keep_ids(render_table(result, title)))
    console.print(keep_ids(render_utilisation_table(result)))
    if sweeps:
        console.print(keep_ids(render_sweep_table(sweeps)))
    if result.unplaceable:
        job, why = result.unplaceable[0]
        console.print(
            f"[yellow]{len(result.unplaceable)} jobs fit no pool[/yellow], e.g. {escape(job)}: {escape(why)}"
        )
    for a in trace.assumptions:
        console.print(f"[dim]assumption: {escape(a)}[/dim]")
    for p in plot_paths:
        console.print(escape(f"wrote {p}"))


def _check_outputs(csv_file: Path | None, plots_dir: Path | None, inputs: dict[str, Path | None]) -> None:
    """Fail before the simulation, not after it, when an output cannot be written, or would be written over
    one of the ``inputs`` (flag -> file: ``--csv jobs.csv --trace jobs.csv`` would replace the trace)."""
    import os

    from energaizer.errors import InvalidInputError

    if csv_file is not None:
        if csv_file.is_dir():
            raise InvalidInputError("--csv", f"{csv_file} is a directory; give the CSV file to write")
        if not csv_file.parent.is_dir():
            raise InvalidInputError("--csv", f"folder {csv_file.parent} does not exist")
        for flag, path in inputs.items():
            if path is not None and csv_file.exists() and path.exists() and os.path.samefile(csv_file, path):
                raise InvalidInputError(
                    "--csv",
                    f"{csv_file} is the {flag} file: the metrics would overwrite it; give another file",
                )
    if plots_dir is not None:
        if plots_dir.exists() and not plots_dir.is_dir():
            raise InvalidInputError("--plots", f"{plots_dir} exists and is not a directory")
        # the folder is made at the end, with its missing parents: the nearest one that exists must be a folder
        existing = next(p for p in (plots_dir, *plots_dir.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise InvalidInputError("--plots", f"cannot make {plots_dir}: {existing} is not a directory")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InvalidInputError(
                "--plots", "needs matplotlib, which is not installed: pip install 'energaizer[plot]'"
            ) from None


def _check_reference_gpu(name: str) -> None:
    from energaizer.catalog import get_gpu
    from energaizer.errors import InvalidInputError, UnknownNameError

    try:
        get_gpu(name)
    except UnknownNameError as exc:
        raise InvalidInputError("--reference-gpu", f"unknown GPU {name!r}", exc.allowed) from None


def _estimator(profile: Path | None):  # type: ignore[no-untyped-def]
    if profile is None:
        return None
    from energaizer.estimator import estimate_pairs

    return lambda workloads, gpus: estimate_pairs(workloads, gpus, profile=profile)


def _run_with_progress(fn, jobs: int, policies: list[str], *, quiet: bool):  # type: ignore[no-untyped-def]
    """Run ``fn(progress_callback)`` under a rich progress bar on stderr (none when quiet or small)."""
    if quiet or jobs < 2000:
        return fn(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} jobs"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks = {p: bar.add_task(f"simulating {p}", total=jobs) for p in policies}

        def update(name: str, done: int) -> None:
            if done % 200 == 0 or done == jobs:
                bar.update(tasks[name], completed=done)

        return fn(update)


def register(app: typer.Typer) -> None:
    app.command(
        "plan",
        help="Capacity planning: simulate energy-aware, first-fit and fastest-GPU placement over a job trace.",
    )(plan)
