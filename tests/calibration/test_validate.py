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
        ("mlenergy-v1", "v100-sxm2-32gb", "mlenergy-v1"),
        ("mlenergy-v1", "a100-sxm4-40gb", "mlenergy-v1"),
    ],
)
def test_ranking_pairs_rows_of_one_campaign_across_gpus(source, gpu, campaign):
    from energaizer.calibration.validate import _campaign

    assert _campaign(source, gpu) == campaign


def _rows(text: str):
    import io

    from energaizer.io.workload_csv import read_workload_csv

    return read_workload_csv(io.StringIO(text))


HEADER = "source,config,model,gpu,requests,input_tokens,output_tokens,batch_size,measured_energy_joules\n"


def test_one_configuration_on_two_gpus_is_compared_per_generated_token():
    """An ML.ENERGY configuration (task, model, max_num_seqs) ran once per GPU type: the runs' mean output
    lengths differ a little, so their rows' workload columns differ; the source's config pairs them and
    the energy per generated token orders them (A100: 1000 J / 100 tokens > H100: 1050 J / 110 tokens)."""
    import numpy as np

    from energaizer.calibration.validate import gpu_pairs

    rows = _rows(
        HEADER + "mlenergy-v2,chat|m|max_num_seqs=8,llama-3.1-8b,a100-sxm4-40gb,1,120,100,1,1000\n"
        "mlenergy-v2,chat|m|max_num_seqs=8,llama-3.1-8b,h100-sxm,1,120,110,1,1050\n"
    )
    measured = np.array([1000.0, 1050.0])
    (pair,) = gpu_pairs(rows, measured, np.array([1000.0, 1000.0]))
    assert pair.gpus == ("a100-sxm4-40gb", "h100-sxm")
    assert pair.measured_ratio == pytest.approx((1000 / 100) / (1050 / 110))
    assert pair.concordant  # predicted 10 vs 9.09 J per token: the A100 more, as measured
    (flipped,) = gpu_pairs(rows, measured, np.array([900.0, 1000.0]))
    assert not flipped.concordant  # predicted 9.0 vs 9.09 J per token (per row, 900 < 1000 agreed)


def test_rows_without_a_config_pair_by_their_workload_columns():
    import numpy as np

    from energaizer.calibration.validate import gpu_pairs

    rows = _rows(
        HEADER + "energaizer-artifact-a10,,gpt2,a10,8,128,0,8,10\n"
        "energaizer-artifact-a100,,gpt2,a100-pcie-40gb,8,128,0,8,12\n"
        "energaizer-artifact-a100,,gpt2,a100-pcie-40gb,8,256,0,8,20\n"
    )
    (pair,) = gpu_pairs(rows, np.array([10.0, 12.0, 20.0]), np.array([11.0, 12.0, 21.0]))
    assert pair.rows == ([0], [1]) and pair.measured_ratio == pytest.approx(10 / 12)


def test_decisive_pairs_are_those_whose_measured_energies_differ_by_more_than_the_margin():
    """Three artifact configurations on an A10 and an A100: measured 3 % apart (a near tie, reversed by the
    prediction), 20 % and 50 % apart (both in order). All pairs: 2 of 3 concordant; decisive: 2 of 2."""
    from types import SimpleNamespace

    import numpy as np

    from energaizer.calibration.validate import DECISIVE_MARGIN, validate

    assert pytest.approx(0.05) == DECISIVE_MARGIN
    rows = _rows(
        HEADER + "energaizer-artifact-a10,,gpt2,a10,8,128,0,8,10.3\n"
        "energaizer-artifact-a100,,gpt2,a100-pcie-40gb,8,128,0,8,10\n"
        "energaizer-artifact-a10,,gpt2,a10,8,256,0,8,24\n"
        "energaizer-artifact-a100,,gpt2,a100-pcie-40gb,8,256,0,8,20\n"
        "energaizer-artifact-a10,,gpt2,a10,8,512,0,8,60\n"
        "energaizer-artifact-a100,,gpt2,a100-pcie-40gb,8,512,0,8,40\n"
    )
    predicted = np.array([9.0, 10.0, 23.0, 20.0, 55.0, 40.0])
    nan = np.full(6, np.nan)
    pred = SimpleNamespace(
        gpu=[r.gpu for r in rows], energy_joules=predicted, duration_seconds=nan, average_power_watts=nan
    )
    report = validate(rows, pred)
    assert report.ranking_pairs == 3 and report.ranking_concordance == pytest.approx(2 / 3)
    assert report.decisive_pairs == 2 and report.decisive_concordance == pytest.approx(1.0)
    ranking = report.to_dict()["ranking"]
    assert ranking["decisive_pairs"] == 2 and ranking["decisive_margin"] == DECISIVE_MARGIN


def test_scores_by_gpu_group_the_catalog_id_whatever_the_rows_call_it():
    """Rows that name one GPU by an alias (``a100``, ``H100``) and by its id are one group in ``by_gpu``
    and ``worst`` names the catalog id, as the ranking pairs and ``estimate --json`` do; the rows'
    spellings made a group per spelling."""
    from energaizer.calibration.validate import validate
    from energaizer.estimator import estimate_pairs

    rows = _rows(
        HEADER + ",,llama-3.1-8b,a100,10,512,128,8,900\n"
        ",,llama-3.1-8b,a100-sxm4-80gb,20,512,128,8,1800\n"
        ",,llama-3.1-8b,H100,10,512,128,8,500\n"
    )
    pred = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows])
    report = validate(rows, pred)
    assert sorted(report.by_gpu) == ["a100-sxm4-80gb", "h100-sxm"]
    assert report.by_gpu["a100-sxm4-80gb"].rows == 2
    assert {w["gpu"] for w in report.worst} == {"a100-sxm4-80gb", "h100-sxm"}
