"""Fit the calibration profile's correction terms to measurements (scikit-learn-like fit/predict).

The residuals are log(predicted / measured) of energy, time and power for every row, each data
source weighted equally (so a large source does not drown a small one), minimised with a robust
(soft-L1) bounded least-squares solver, with a weak log-scale prior that keeps a parameter the rows do
not identify (e.g. a serving engine's host time when no serving rows are given) at its physical
default. Only the profile's shared physical parameters are fitted,
never per-row or per-model factors, so the fit transfers to GPUs and models it has not seen.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from energaizer.calibration.validate import measured_arrays
from energaizer.catalog import get_gpu
from energaizer.errors import InvalidInputError
from energaizer.io.workload_csv import CsvRow
from energaizer.pipeline import prepare, run, solve
from energaizer.profile import FITTED_PARAMETERS, CalibrationProfile
from energaizer.result import EstimateBatch


def _bounds(name: str) -> tuple[float, float]:
    info = CalibrationProfile.model_fields[name]
    lo, hi = 0.0, np.inf
    for m in info.metadata:
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else getattr(m, "gt", lo) or lo
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
    return float(lo) + 1e-6, float(hi)


class ProfileFitter:
    """Fits a :class:`CalibrationProfile` to measured rows, with scikit-learn's estimator conventions.

    ``__init__`` only stores its parameters (checked by ``fit``): ``parameters`` (the profile fields to
    fit), ``start`` (the profile they start from and the others keep; default: the unfitted physical
    defaults), ``max_evaluations`` (estimator runs the solver may make) and ``prior_weight`` (the weak
    log-scale pull of each parameter towards its physical default). ``fit(rows)`` sets the fitted state,
    attributes ending in ``_``: ``profile_`` (the fitted profile), ``cost_`` (the solver's final cost)
    and ``n_evaluations_``; ``predict(rows)`` estimates the rows with ``profile_``.
    ``get_params()`` / ``set_params(**params)`` read and change the constructor parameters.
    """

    def __init__(
        self,
        parameters: Sequence[str] = FITTED_PARAMETERS,
        start: CalibrationProfile | None = None,
        max_evaluations: int = 400,
        prior_weight: float = 0.3,
    ) -> None:
        self.parameters = parameters
        self.start = start
        self.max_evaluations = max_evaluations
        self.prior_weight = prior_weight

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> ProfileFitter:
        """Change constructor parameters (unknown names raise); returns ``self``."""
        for name, value in params.items():
            if name not in _PARAMS:
                raise InvalidInputError(name, "not a ProfileFitter parameter", _PARAMS)
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if v != _DEFAULTS[k]}
        return f"ProfileFitter({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _validate(self) -> None:
        unknown = [p for p in self.parameters if p not in CalibrationProfile.model_fields]
        if unknown:
            raise InvalidInputError("parameters", f"unknown: {', '.join(unknown)}", FITTED_PARAMETERS)

    def fit(self, rows: list[CsvRow]) -> ProfileFitter:
        """Fit ``parameters`` to the measured energy, time and power of ``rows``; returns ``self``."""
        self._validate()
        e, t, p = measured_arrays(rows)
        if not np.isfinite(e).any():
            raise InvalidInputError("measured_energy_joules", "no row has a measured energy")
        workloads = [r.workload for r in rows]
        specs = [get_gpu(r.gpu) for r in rows]
        sources = [r.extra.get("source") or "(none)" for r in rows]
        counts = Counter(sources)
        weight = np.array([1.0 / np.sqrt(counts[s]) for s in sources])
        start = self.start or CalibrationProfile()
        prepared = prepare(workloads, specs)  # the profile-free stages, once for every evaluation
        first = solve(prepared, start)
        if not (np.isfinite(first.energy_joules) & np.isfinite(e)).any():  # every residual would be 0
            i = int(np.argmax(np.isfinite(e)))
            raise InvalidInputError(
                "measurements",
                f"no row can be estimated, so there is nothing to fit (line {rows[i].line} on "
                f"{rows[i].gpu}: {first.reason[i] or 'no finite estimate'})",
            )
        x0 = np.array([getattr(start, k) for k in self.parameters], dtype=np.float64)
        lo, hi = np.array([_bounds(k) for k in self.parameters]).T
        x0 = np.clip(x0, lo, np.minimum(hi, np.where(np.isfinite(hi), hi, x0 * 10 + 1)))
        scale = np.maximum(np.abs(x0), 1e-3)
        prior = np.array(
            [CalibrationProfile.model_fields[k].default for k in self.parameters], dtype=np.float64
        )
        has_prior = prior > 0

        def profile_at(x: np.ndarray) -> CalibrationProfile:
            return start.model_copy(
                update=dict(zip(self.parameters, (float(v) for v in x * scale), strict=True))
            )

        def residuals(z: np.ndarray) -> np.ndarray:
            pred = solve(prepared, profile_at(z))
            parts = []
            for pv, mv in (
                (pred.energy_joules, e),
                (pred.duration_seconds, t),
                (pred.average_power_watts, p),
            ):
                with np.errstate(all="ignore"):  # 0, inf (a measured 1e-320 J): no residual
                    r = np.log(pv / mv)
                parts.append(np.where(np.isfinite(r), r, 0.0) * weight)
            # a parameter that the rows do not identify stays near its physical default
            x = np.maximum(z * scale, 1e-9)
            parts.append(
                self.prior_weight * np.where(has_prior, np.log(x / np.where(has_prior, prior, 1.0)), 0.0)
            )
            return np.concatenate(parts)

        sol = least_squares(
            residuals,
            x0 / scale,
            bounds=(lo / scale, hi / scale),
            # prior weight 0.3 and this scale: swept against leave-one-GPU/family-out (docs/accuracy.md)
            loss="soft_l1",
            f_scale=0.1,
            max_nfev=self.max_evaluations,
            x_scale="jac",
        )
        self.profile_ = profile_at(sol.x).model_copy(update={"fitted_on": dict(counts)})
        self.cost_ = float(sol.cost)
        self.n_evaluations_ = int(sol.nfev)
        return self

    def predict(self, rows: list[CsvRow]) -> EstimateBatch:
        """Estimates of ``rows`` with the fitted profile."""
        if not hasattr(self, "profile_"):
            raise RuntimeError("this ProfileFitter is not fitted yet: call fit(rows) first")
        return run([r.workload for r in rows], [get_gpu(r.gpu) for r in rows], self.profile_)


_PARAMS = ("parameters", "start", "max_evaluations", "prior_weight")
_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(ProfileFitter.__init__).parameters.items()
    if name in _PARAMS
}
