"""`kubectl get aijobs`: readable units in status.placement and the CRD's printer columns."""

from __future__ import annotations

import pytest
from energaizer_operator import crd
from energaizer_operator.display import (
    readable_duration,
    readable_energy,
    readable_placement,
    readable_savings,
)
from energaizer_operator.models import PlacementStatus


@pytest.mark.parametrize(
    ("joules", "text"),
    [
        (0.5, "0.5 J"),
        (12.0, "12 J"),
        (1234.0, "1.23 kJ"),
        (1.2e6, "1.2 MJ"),
        (3.456e9, "3.46 GJ"),
        (float("nan"), "-"),
    ],
)
def test_readable_energy(joules: float, text: str) -> None:
    assert readable_energy(joules) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "0.25s"),
        (7.26, "7.3s"),
        (45, "45s"),
        (750, "12m30s"),
        (11_100, "3h05m"),
        (187_200, "2d04h"),
        (-1, "-"),
    ],
)
def test_readable_duration(seconds: float, text: str) -> None:
    assert readable_duration(seconds) == text


def test_readable_savings_and_placement_fit_the_status_model() -> None:
    assert readable_savings(310e3, 1.29e6) == "310 kJ (24%)"
    assert readable_savings(0.0, 0.0) == "0 J"
    extra = readable_placement(980e3, 750.0, 310e3)
    status = PlacementStatus.model_validate(
        {"gpuType": "l4", "predictedEnergyJoules": 980e3, "savingsJoules": 310e3, **extra}
    )
    assert status.predicted_energy == "980 kJ" and status.predicted_duration == "12m30s"
    assert status.savings == "310 kJ (24%)" and status.predicted_duration_seconds == 750.0


def test_printer_columns_default_and_wide() -> None:
    version = crd.aijob_crd()["spec"]["versions"][0]
    cols = version["additionalPrinterColumns"]
    default = [c["name"] for c in cols if not c.get("priority")]
    assert default == ["GPU Type", "Energy", "Duration", "Savings", "Job", "Phase", "Age"]
    wide = [c["name"] for c in cols if c.get("priority") == 1]
    assert {"Model", "GPUs", "Energy (J)", "Savings (J)"} <= set(wide)
    # every printer column points at a field the schema defines (kubectl shows <none> otherwise)
    schema = version["schema"]["openAPIV3Schema"]
    for c in cols:
        node = schema
        for part in c["jsonPath"].strip(".").split("."):
            if part == "metadata":
                break
            node = node["properties"][part]
        else:
            assert node.get("type") == {"date": "string"}.get(c["type"], c["type"]), c
