"""Validation: GPU-ranking agreement pairs rows of one measurement campaign."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("source", "gpu", "campaign"),
    [
        ("energaizer-artifact-a10", "a10", "energaizer-artifact"),
        ("energaizer-artifact-a100", "a100-pcie-40gb", "energaizer-artifact"),
        ("energaizer-artifact-dvfs", "a100-pcie-40gb", "energaizer-artifact-dvfs"),
        ("mlenergy-v2", "h100-sxm", "mlenergy-v2"),
    ],
)
def test_ranking_pairs_rows_of_one_campaign_across_gpus(source, gpu, campaign):
    from energaizer.calibration.validate import _campaign

    assert _campaign(source, gpu) == campaign
