"""``energaizer calibrate``'s held-out check: leave-one-out error against the starting profile, and no
profile written when the fit would not predict new jobs better (unless ``--force``)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from energaizer.calibration.crossval import fold_indices

DATA = Path(__file__).resolve().parents[2] / "energaizer" / "data" / "measurements"
FIT = ["--parameters", "alpha_tensor,alpha_sm,alpha_l2", "--max-evaluations", "30"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "energaizer", *args], capture_output=True, text=True, timeout=300
    )


def rows_csv(tmp_path: Path, power_scale: float, count: int = 20) -> Path:
    """``count`` measured A100/A10 rows of the EnergAIzer artifact, energy and power scaled (a site whose GPUs draw
    that much more than the rows the default profile was fitted on)."""
    rows = list(csv.DictReader((DATA / "artifact.csv").open()))[:count]
    for r in rows:
        for key in ("measured_energy_joules", "measured_average_power_watts"):
            if r.get(key):
                r[key] = str(float(r[key]) * power_scale)
    path = tmp_path / f"site-{power_scale}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_better_fit_is_written_with_its_held_out_error(tmp_path):
    out = tmp_path / "site.json"
    r = cli("calibrate", str(rows_csv(tmp_path, 1.3)), "-o", str(out), *FIT, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    held = report["holdout"]
    assert report["written"] and held["method"] == "leave-one-out" and held["folds"] == held["rows"] == 20
    assert held["better"] and held["energy_mape_pct"] < held["baseline_energy_mape_pct"]
    metrics = json.loads(out.read_text())["fit_metrics"]
    assert metrics["holdout_energy_mape_pct"] == held["energy_mape_pct"]
    assert metrics["baseline_energy_mape_pct"] == held["baseline_energy_mape_pct"]


def test_many_rows_are_checked_by_ten_folds_not_a_refit_per_row(tmp_path):
    """Above 50 rows the default check is 10-fold (the shipped 1037 rows would otherwise take 1037 refits)."""
    r = cli(
        "calibrate", str(rows_csv(tmp_path, 1.3, count=60)), "-o", str(tmp_path / "p.json"), *FIT, "--json"
    )
    assert r.returncode == 0, r.stderr
    held = json.loads(r.stdout)["holdout"]
    assert held["method"] == "10-fold" and held["folds"] == 10 and held["rows"] == 60


def test_a_fit_that_is_not_better_is_refused_unless_forced(tmp_path):
    out = tmp_path / "same.json"
    rows = rows_csv(tmp_path, 1.0)  # rows the default profile was fitted on
    # parameters of the legacy serving engine: the artifact's eager rows do not depend on them, so no fit
    # of them can predict held-out rows better than the starting profile
    fit = [
        "--parameters",
        "legacy_decode_seq_overhead_us,legacy_worker_overhead_ms",
        "--max-evaluations",
        "10",
    ]
    r = cli("calibrate", str(rows), "-o", str(out), *fit, "--folds", "5")
    assert r.returncode == 1 and not out.exists()
    line = r.stderr.strip()
    assert line.startswith("error: calibrate: not written: 5-fold energy MAPE") and "\n" not in line
    forced = cli("calibrate", str(rows), "-o", str(out), *fit, "--folds", "5", "--force")
    assert forced.returncode == 0 and out.exists() and "written with --force" in forced.stdout


def test_one_row_has_no_held_out_error_and_says_so(tmp_path):
    """One row leaves no fold a row to fit: not "the fit would not predict new jobs better" (it is not known)."""
    out = tmp_path / "one.json"
    r = cli("calibrate", str(rows_csv(tmp_path, 1.3, count=1)), "-o", str(out), *FIT)
    assert r.returncode == 1 and not out.exists()
    line = r.stderr.strip()
    assert "\n" not in line and "no held-out error" in line and "(1 row)" in line, line
    assert "would not predict new jobs better" not in line


def test_a_profile_fitted_on_rows_without_durations_loads(tmp_path):
    """measured_duration_seconds is optional: without it the time and power MAPE are unknown, written as null,
    and the written profile must still load (it was rejected: fit_metrics.time_mape_pct not a number)."""
    rows = list(csv.DictReader(rows_csv(tmp_path, 1.3, count=6).open()))
    path = tmp_path / "energy-only.csv"
    with path.open("w", newline="") as fh:
        drop = ("measured_duration_seconds", "measured_average_power_watts")
        writer = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k not in drop], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "energy-only.json"
    r = cli("calibrate", str(path), "-o", str(out), *FIT, "--folds", "2", "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["fit_metrics"]["time_mape_pct"] is None
    r = cli("estimate", "--model", "gpt2", "--gpu", "l4", "--profile", str(out), "--json")
    assert r.returncode == 0, r.stderr


def test_fold_indices_cover_every_row_once():
    for n, k in ((5, 0), (5, 9), (10, 3)):
        parts = fold_indices(n, k)
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert len(fold_indices(5, 0)) == 5 and len(fold_indices(10, 3)) == 3
