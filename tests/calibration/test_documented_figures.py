"""docs/accuracy.md states what the shipped profile does: the in-sample figures (by source, by GPU, overall)
and the never-fitted rows' figures are recomputed here (seconds) and must appear in it as written, so a
refit or a model change that moves them fails until the document says so. The held-out refits take
minutes (benchmarks/accuracy_holdout.py) and are not repeated here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from energaizer.calibration.validate import GroupScore, validate
from energaizer.estimator import estimate_pairs
from energaizer.io.workload_csv import read_workload_csv

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "energaizer" / "data"
DOC = ROOT / "docs" / "accuracy.md"


def _report(folder: Path):
    rows = [r for f in sorted(folder.glob("*.csv")) for r in read_workload_csv(f)]
    return rows, validate(rows, estimate_pairs([r.workload for r in rows], [r.gpu for r in rows]))


def _figures(s: GroupScore, sep: str) -> str:
    return sep.join(f"{x:.1f}" for x in (s.energy_mape, s.time_mape, s.power_mape))


@pytest.fixture(scope="module")
def doc() -> str:
    return " ".join(DOC.read_text().split())  # line breaks as spaces: a figure may wrap


@pytest.fixture(scope="module")
def in_sample():
    return _report(DATA / "measurements")[1]


def test_in_sample_figures_are_the_shipped_profiles(doc, in_sample):
    table = " | ".join([str(in_sample.overall.rows), *_figures(in_sample.overall, " ").split()])
    assert f"| **all** | **{in_sample.overall.rows}** | **" in doc
    assert re.sub(r"\*\*", "", doc).count(table) >= 1
    for source, s in in_sample.by_source.items():
        assert f"| {source} | {s.rows} | {_figures(s, ' | ')} |" in doc, source
    for gpu, s in in_sample.by_gpu.items():
        assert f"{gpu} {_figures(s, ' / ')}" in doc, gpu
    assert (
        f"GPU ranking concordance {in_sample.ranking_concordance:.2f} ({in_sample.ranking_pairs} pairs" in doc
    )


def test_never_fitted_figures_are_the_shipped_profiles(doc):
    rows, _ = _report(DATA / "holdout")
    by_source: dict[str, list] = {}
    for r in rows:
        by_source.setdefault(r.extra["source"], []).append(r)
    for source, group in by_source.items():
        s = validate(group, estimate_pairs([r.workload for r in group], [r.gpu for r in group])).overall
        assert _figures(s, " / ") in doc, (source, _figures(s, " / "))
    a40 = [r for r in rows if r.gpu == "a40"]  # the never-fitted GPU over both its sources
    s = validate(a40, estimate_pairs([r.workload for r in a40], [r.gpu for r in a40])).overall
    assert f"**{_figures(s, ' / ')}** on its {len(a40)} rows" in doc
