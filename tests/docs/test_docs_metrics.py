"""The metrics tables of docs/operator.md and docs/scheduler.md are what the operator and the extender
expose: the same names, each with its type and labels; the rows not marked *(extension)* are contract
section 4's, and the contract's names have the contract's type and labels (checked where ../shared/ is
beside the checkout)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from energaizer_operator.extender.server import ExtenderMetrics
from energaizer_operator.metrics import _LeaderView
from operator_testkit import filled_metrics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "contract.md"
Exposed = dict[str, tuple[str, frozenset[str]]]


def _exposed(text: str) -> Exposed:
    """metric name as written (a counter's with `_total`) -> (type, label names), `_created` gauges left out."""
    out: Exposed = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = frozenset(label for s in family.samples for label in s.labels if label != "le")
        out[name] = (family.type, labels)
    return out


def _operator() -> Exposed:
    """Every series of the operator's registry filled once, as the leader's /metrics shows it."""
    m = filled_metrics()
    m.set_measured("ns", "a", "l4", 8.0)
    m.prediction_error_ratio.labels(gpu_type="l4").observe(0.9)
    return _exposed(generate_latest(_LeaderView(m.registry, lambda: True)).decode())  # type: ignore[arg-type]


def _extender() -> Exposed:
    m = ExtenderMetrics(SimpleNamespace(estimator_runs=0, verdicts={}))  # type: ignore[arg-type]
    m.requests.labels("filter", "ok").inc()
    m.seconds.labels("filter").observe(0.001)
    return _exposed(generate_latest(m.registry).decode())


ROW = re.compile(r"^\| `(energaizer_\w+)`( \*\(extension\)\*)? \| (\w+)[^|]* \| ([^|]+) \|", flags=re.M)


def _table(text: str) -> dict[str, tuple[str, frozenset[str], bool]]:
    """name -> (type, labels, extension) of a `| metric | type | labels | ... |` table's rows."""
    return {
        name: (kind, frozenset(re.findall(r"`(\w+)`", labels)), bool(ext))
        for name, ext, kind, labels in ROW.findall(text)
    }


def _section(doc: str, heading: str) -> str:
    return (ROOT / "docs" / doc).read_text().split(heading, 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(
    ("doc", "heading", "exposed"),
    [("operator.md", "## Metrics", _operator), ("scheduler.md", "## 1. The scheduler extender", _extender)],
)
def test_the_metrics_table_is_what_is_exposed(doc: str, heading: str, exposed) -> None:
    table = {name: (kind, labels) for name, (kind, labels, _) in _table(_section(doc, heading)).items()}
    actual = exposed()
    assert len(actual) >= 4
    assert table.keys() == actual.keys(), (
        f"{doc}: missing {actual.keys() - table.keys()}, extra {table.keys() - actual.keys()}"
    )
    for name, (kind, labels) in actual.items():
        assert table[name] == (kind, labels), (
            f"{doc}: {name} is documented {table[name]}, exposed {(kind, labels)}"
        )


@pytest.mark.skipif(not CONTRACT.exists(), reason="needs ../shared/contract.md beside the checkout")
def test_contract_metrics_are_exposed_as_the_contract_says_and_are_the_docs_non_extension_rows() -> None:
    section = CONTRACT.read_text().split("## 4.", 1)[1].split("\n## ", 1)[0]
    contract = _table(section)
    assert len(contract) >= 10
    exposed = _operator()
    for name, (kind, labels, _) in contract.items():
        assert name in exposed, f"contract metric {name} is not exposed"
        assert exposed[name] == (kind, labels), f"{name}: contract {(kind, labels)}, exposed {exposed[name]}"
    documented = _table(_section("operator.md", "## Metrics"))
    assert {n for n, (_, _, ext) in documented.items() if not ext} == contract.keys()
