"""Held-out error of a calibration fit: leave-one-out (or K-fold) cross-validation on the fitted rows.

A profile fitted on a cluster's few measured jobs can fit them well and still predict the next job worse
than the profile it started from; the in-sample MAPE cannot tell. Each fold refits on the other rows
(starting from the full fit, same parameters and solver budget) and predicts its own rows; the held-out
energy MAPE is compared with the starting profile's MAPE on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from energaizer.calibration.fit import ProfileFitter
from energaizer.calibration.validate import ape, measured_arrays
from energaizer.catalog import get_gpu
from energaizer.io.workload_csv import CsvRow
from energaizer.pipeline import run
from energaizer.profile import CalibrationProfile


@dataclass(frozen=True)
class HoldoutReport:
    method: str  # "leave-one-out" or "K-fold"
    folds: int
    rows: int
    energy_mape_pct: float  # held-out, the fitted profile's procedure
    baseline_energy_mape_pct: float  # the starting profile on the same rows (it saw none of them fitted)
    in_sample_energy_mape_pct: float

    @property
    def better(self) -> bool:
        return bool(
            np.isfinite(self.energy_mape_pct) and self.energy_mape_pct < self.baseline_energy_mape_pct
        )

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "folds": self.folds,
            "rows": self.rows,
            "energy_mape_pct": self.energy_mape_pct,
            "baseline_energy_mape_pct": self.baseline_energy_mape_pct,
            "in_sample_energy_mape_pct": self.in_sample_energy_mape_pct,
            "better": self.better,
        }


def _energy_mape(rows: Sequence[CsvRow], profile: CalibrationProfile) -> np.ndarray:
    pred = run([r.workload for r in rows], [get_gpu(r.gpu) for r in rows], profile)
    e, _t, _p = measured_arrays(list(rows))
    return ape(np.asarray(pred.energy_joules, dtype=np.float64), e)


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if x.size else float("nan")


def fold_indices(n: int, folds: int) -> list[np.ndarray]:
    """``folds`` = 0 or >= n: one row per fold (leave-one-out); else contiguous-stride folds."""
    k = n if folds <= 0 or folds >= n else folds
    return [np.arange(i, n, k) for i in range(k)]


def holdout(
    rows: list[CsvRow],
    fitted: ProfileFitter,
    start: CalibrationProfile,
    folds: int = 0,
) -> HoldoutReport:
    """Cross-validate ``fitted``'s procedure on ``rows`` against the starting profile ``start``."""
    assert fitted.profile_ is not None, "fit first"
    n = len(rows)
    parts = fold_indices(n, folds)
    errors = np.full(n, np.nan)
    if n >= 2:
        for idx in parts:
            keep = np.setdiff1d(np.arange(n), idx)
            fold = ProfileFitter(
                parameters=fitted.parameters,
                start=start,  # not the full fit: it has seen the held-out rows
                max_evaluations=fitted.max_evaluations,
                prior_weight=fitted.prior_weight,
            )
            try:
                fold.fit([rows[i] for i in keep])
            except ValueError:  # the other rows have no measured energy: this fold predicts nothing
                continue
            errors[idx] = _energy_mape([rows[i] for i in idx], fold.profile_)
    method = "leave-one-out" if len(parts) == n else f"{len(parts)}-fold"
    return HoldoutReport(
        method=method,
        folds=len(parts),
        rows=n,
        energy_mape_pct=_mean(errors),
        baseline_energy_mape_pct=_mean(_energy_mape(rows, start)),
        in_sample_energy_mape_pct=_mean(_energy_mape(rows, fitted.profile_)),
    )
