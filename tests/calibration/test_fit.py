"""ProfileFitter follows scikit-learn's estimator conventions."""

from __future__ import annotations

from pathlib import Path

import pytest

from energaizer.calibration.fit import ProfileFitter
from energaizer.errors import InvalidInputError
from energaizer.io.workload_csv import read_workload_csv
from energaizer.profile import FITTED_PARAMETERS, CalibrationProfile

MEASUREMENTS = Path(__file__).resolve().parents[2] / "energaizer" / "data" / "measurements"


@pytest.fixture(scope="module")
def rows():
    return read_workload_csv(MEASUREMENTS / "mlenergy_v3.csv")[:12]


def test_init_only_stores_its_parameters():
    names = ["not_a_field"]
    fitter = ProfileFitter(parameters=names, max_evaluations=7)  # checked in fit, not here
    assert fitter.get_params() == {
        "parameters": names,
        "start": None,
        "max_evaluations": 7,
        "prior_weight": 0.3,
    }
    assert not [a for a in vars(fitter) if a.endswith("_")]  # no fitted state before fit
    assert repr(fitter) == "ProfileFitter(parameters=['not_a_field'], max_evaluations=7)"
    with pytest.raises(InvalidInputError, match="parameters"):
        fitter.fit([])


def test_set_params_changes_parameters_and_rejects_unknown_ones():
    fitter = ProfileFitter()
    assert fitter.set_params(prior_weight=0.5) is fitter and fitter.prior_weight == 0.5
    with pytest.raises(InvalidInputError, match="learning_rate"):
        fitter.set_params(learning_rate=0.1)


def test_predict_before_fit_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        ProfileFitter().predict([])


def test_fit_sets_the_fitted_state_and_keeps_unfitted_parameters(rows):
    start = CalibrationProfile()
    fitter = ProfileFitter(parameters=["launch_overhead_us", "alpha_sm"], start=start, max_evaluations=4)
    assert fitter.fit(rows) is fitter
    assert isinstance(fitter.profile_, CalibrationProfile)
    assert fitter.cost_ >= 0 and 1 <= fitter.n_evaluations_ <= 4
    for name in FITTED_PARAMETERS:
        if name not in ("launch_overhead_us", "alpha_sm"):
            assert getattr(fitter.profile_, name) == getattr(start, name), name
    assert len(fitter.predict(rows)) == len(rows)
