"""``energaizer calibrate`` (fit correction terms) and ``energaizer validate`` (predicted vs measured)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

import typer

from energaizer.cli.common import (
    CatalogOpt,
    JsonOpt,
    ProfileOpt,
    id_column,
    load_catalogs,
    output_console,
    print_json,
)

# The held-out check refits once per fold: leave-one-out for a site's few rows, K-fold for large sets
# (the shipped 1037 rows would take a thousand refits).
LEAVE_ONE_OUT_MAX_ROWS = 50
DEFAULT_FOLDS = 10


def _read_all(paths: list[Path]):  # type: ignore[no-untyped-def]
    """The rows of every measurement CSV; each row must carry a measured energy (contract section 3)."""
    from energaizer.errors import InvalidInputError
    from energaizer.io.workload_csv import read_workload_csv

    rows = []
    for i, p in enumerate(paths):
        for q in paths[:i]:
            if _same_file(p, q):
                also = f" (also as {q})" if str(q) != str(p) else ""
                raise InvalidInputError(
                    "MEASUREMENTS", f"{p} is named twice{also}: its rows would count twice"
                )
        got = read_workload_csv(p)
        for r in got:
            if "measured_energy_joules" not in r.measured:
                raise InvalidInputError(
                    "measured_energy_joules",
                    f"{p} line {r.line}: missing; a measurement CSV has the measured energy of every row "
                    "(and optionally measured_duration_seconds, measured_average_power_watts)",
                )
        rows.extend(got)
    return rows


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (or is unreadable): its reader says so
        return False


def _check_not_an_input(output: Path, measurements: list[Path], catalogs: list[Path]) -> None:
    """``-o`` naming one of the measurement CSVs (a slip of ``calibrate m.csv -o m.csv``) or a ``--catalog``
    file would replace it with the profile: refused before anything is read or written."""
    from energaizer.errors import InvalidInputError

    if not output.exists():
        return
    for what, paths in (("the measurement CSV", measurements), ("the --catalog file", catalogs)):
        for p in paths:
            if _same_file(output, p):
                raise InvalidInputError(
                    "--output", f"{output} is {what} {p}: the profile would overwrite it; give another file"
                )


def _pct(x: float) -> str:
    """A MAPE for a table or a line: "-" where the rows give none (no measured durations, no estimate)."""
    return f"{x:.1f}" if math.isfinite(x) else "-"


def _text(name: str) -> str:
    """A file name as text for the profile JSON: bytes that are not UTF-8 (which Python keeps as lone
    surrogates, unwritable as JSON) shown as U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def _fitted_description(paths: list[Path], rows, start: str) -> str:  # type: ignore[no-untyped-def]
    files = ", ".join(_text(p.name) for p in paths[:5]) + (
        f" and {len(paths) - 5} more" if len(paths) > 5 else ""
    )
    return (
        f"Fitted by `energaizer calibrate` on {len(rows)} measured rows from {files}, "
        f"starting from profile {start!r}; rows per source in fitted_on."
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def calibrate(
        measurements: Annotated[list[Path], typer.Argument(help="measurement CSV(s), contract section 3")],
        output: Annotated[Path, typer.Option("-o", "--output", help="profile JSON to write")],
        parameters: Annotated[
            str | None,
            typer.Option(
                help="comma list of parameters to fit (default: the shipped fit's; the kernel-timed "
                "gemm_dram_efficiency, fused_dram_efficiency and quantized_expert_efficiency only when named)"
            ),
        ] = None,
        profile: ProfileOpt = None,
        max_evaluations: Annotated[
            int, typer.Option(help="solver budget (model evaluations)", min=1, max=100_000)
        ] = 300,
        folds: Annotated[
            int | None,
            typer.Option(
                min=0,
                help="held-out check: 0 = leave-one-out, K = K-fold cross-validation "
                f"[default: leave-one-out up to {LEAVE_ONE_OUT_MAX_ROWS} rows, else {DEFAULT_FOLDS}-fold]",
                show_default=False,
            ),
        ] = None,
        force: Annotated[
            bool, typer.Option(help="write the profile even when its held-out error is not better")
        ] = False,
        json_out: JsonOpt = False,
        catalog: CatalogOpt = None,
    ) -> None:
        """Fit the correction terms (launch, wave, host gaps, efficiencies, module power) to measurements.

        The fit is cross-validated on the rows (leave-one-out up to 50 rows, else 10-fold, by default): when its held-out energy MAPE is
        not below the starting profile's (the shipped default, or --profile) on the same rows, the profile is
        not written (exit 1) unless --force."""
        from energaizer.calibration.crossval import holdout
        from energaizer.calibration.fit import ProfileFitter
        from energaizer.calibration.validate import validate
        from energaizer.errors import InvalidInputError
        from energaizer.profile import CALIBRATABLE_PARAMETERS, FITTED_PARAMETERS, load_profile, save_profile

        _check_not_an_input(output, measurements, catalog or [])
        load_catalogs(catalog)
        names = (
            [p.strip() for p in parameters.split(",") if p.strip()] if parameters else list(FITTED_PARAMETERS)
        )
        unknown = [n for n in names if n not in CALIBRATABLE_PARAMETERS]
        if unknown or not names:
            raise InvalidInputError(
                "--parameters",
                f"unknown parameter {unknown[0]!r}" if unknown else "empty",
                CALIBRATABLE_PARAMETERS,
            )
        if folds == 1:
            raise InvalidInputError(
                "--folds",
                "1 fold holds out every row, leaving none to fit; give 0 (leave-one-out) or 2 or more",
            )
        if output.is_dir():
            raise InvalidInputError("--output", f"{output} is a directory; give the profile file to write")
        if not output.parent.is_dir():
            raise InvalidInputError("--output", f"folder {output.parent} does not exist")
        start = load_profile(profile)
        rows = _read_all(measurements)
        fitter = ProfileFitter(parameters=names, start=start, max_evaluations=max_evaluations)
        fitter.fit(rows)
        report = validate(rows, fitter.predict(rows))
        if folds is None:  # a refit per row is affordable for a site's few rows, not for a thousand
            folds = 0 if len(rows) <= LEAVE_ONE_OUT_MAX_ROWS else DEFAULT_FOLDS
        held = holdout(rows, fitter, start, folds=folds)
        baseline = "--profile" if profile is not None else "the default profile"
        verdict = (
            f"{held.method} energy MAPE {held.energy_mape_pct:.1f} % vs {held.baseline_energy_mape_pct:.1f} % "
            f"with {baseline}"
        )
        unchecked = not math.isfinite(held.energy_mape_pct)  # one row, or no fold left a row to fit
        if unchecked:
            verdict = (
                f"no held-out error: no {held.method} fold had rows to fit and a row with an estimate to "
                f"predict ({held.rows} row{'' if held.rows == 1 else 's'})"
            )
        if not held.better and not force:
            if json_out:
                print_json({"written": False, "holdout": held.to_dict(), "validation": report.to_dict()})
            why = (
                "how it predicts new jobs is unknown"
                if unchecked
                else "the fit would not predict new jobs better"
            )
            typer.echo(
                f"error: calibrate: not written: {verdict}: {why} (--force writes it anyway)",
                err=True,
            )
            raise SystemExit(1)
        fitted = fitter.profile_.model_copy(
            update={
                "name": _text(output.stem),
                "description": _fitted_description(measurements, rows, start.name),
                "fit_metrics": {
                    "energy_mape_pct": report.overall.energy_mape,
                    "time_mape_pct": report.overall.time_mape,
                    "power_mape_pct": report.overall.power_mape,
                    "holdout_energy_mape_pct": held.energy_mape_pct,
                    "baseline_energy_mape_pct": held.baseline_energy_mape_pct,
                },
            }
        )
        try:
            save_profile(fitted, output)
        except OSError as exc:  # a full disk, a read-only file system: the error names no file
            raise InvalidInputError("--output", f"cannot write {output}: {exc.strerror or exc}") from None
        if json_out:
            print_json(
                {
                    "written": True,
                    "profile": fitted.model_dump(mode="json"),
                    "holdout": held.to_dict(),
                    "validation": report.to_dict(),
                }
            )
        else:
            typer.echo(
                f"wrote {output}: {len(rows)} rows, energy MAPE {_pct(report.overall.energy_mape)} %, "
                f"time {_pct(report.overall.time_mape)} %, power {_pct(report.overall.power_mape)} %; "
                f"held out: {verdict}" + ("" if held.better else " (written with --force)")
            )

    @app.command()
    def validate(
        measurements: Annotated[list[Path], typer.Argument(help="measurement CSV(s), contract section 3")],
        worst: Annotated[int, typer.Option(help="how many worst rows to list", min=0, max=100_000)] = 10,
        json_out: JsonOpt = False,
        profile: ProfileOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Predicted vs measured: MAPE of energy/time/power by source and GPU, worst cases, GPU-ranking agreement."""
        from rich.markup import escape
        from rich.table import Table

        from energaizer.calibration.validate import DECISIVE_MARGIN
        from energaizer.calibration.validate import validate as run_validate
        from energaizer.estimator import estimate_pairs

        load_catalogs(catalog)
        rows = _read_all(measurements)
        pred = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=profile)
        report = run_validate(rows, pred, worst_n=worst)
        if json_out:
            print_json(report.to_dict())
            return
        console = output_console()
        table = Table(title=f"predicted vs measured ({len(rows)} rows): MAPE %")
        groups = (  # sources and GPU ids are the files' text, not rich markup
            [("all", report.overall)]
            + [(escape(f"source {k}"), v) for k, v in report.by_source.items()]
            + [(escape(f"gpu {k}"), v) for k, v in report.by_gpu.items()]
        )
        id_column(table, "group", [name for name, _ in groups])
        for col in ("rows", "energy", "time", "power"):
            table.add_column(col, justify="right", overflow="fold")
        for name, s in groups:
            table.add_row(name, str(s.rows), _pct(s.energy_mape), _pct(s.time_mape), _pct(s.power_mape))
        console.print(table)
        if not report.ranking_pairs:
            console.print("GPU ranking: no workload was measured on two GPU types of one campaign")
        else:
            decisive = (
                f" ({report.decisive_concordance:.2f} of the {report.decisive_pairs} whose measured energies "
                f"differ by more than {DECISIVE_MARGIN:.0%})"
                if report.decisive_pairs
                else f" (none of them differs by more than {DECISIVE_MARGIN:.0%})"
            )
            console.print(
                f"GPU ranking: {report.ranking_pairs} comparable pairs, concordance "
                f"{report.ranking_concordance:.2f}{decisive}, best-GPU agreement {report.best_gpu_agreement:.2f}"
            )
        flips = report.reversed_pairs[:worst]
        if flips:
            rt = Table(title="GPU pairs in reverse order (energy per unit of work, first GPU / second)")
            id_column(rt, "workload", [escape(f["workload"]) for f in flips])
            for col in ("gpus", "lines", "measured", "predicted"):
                rt.add_column(col, overflow="fold", justify="left" if col in ("gpus", "lines") else "right")
            for f in flips:
                rt.add_row(
                    escape(f["workload"]),
                    escape(" / ".join(f["gpus"])),
                    " / ".join(",".join(map(str, ls)) for ls in f["lines"]),
                    f"{f['measured_ratio']:.2f}",
                    f"{f['predicted_ratio']:.2f}",
                )
            console.print(rt)
        wt = Table(title="worst energy errors")
        id_column(wt, "line", [str(w["line"]) for w in report.worst], justify="right")
        id_column(wt, "model", [escape(w["model"]) for w in report.worst])
        id_column(wt, "gpu", [escape(w["gpu"]) for w in report.worst])
        for col in ("source", "energy %", "time %", "power %"):
            wt.add_column(col, overflow="fold", justify="left" if col == "source" else "right")
        for w in report.worst:
            wt.add_row(
                str(w["line"]),
                escape(w["model"]),
                escape(w["gpu"]),
                escape(w["source"]),
                _pct(w["energy_error_pct"]),
                _pct(w["time_error_pct"]),
                _pct(w["power_error_pct"]),
            )
        console.print(wt)
