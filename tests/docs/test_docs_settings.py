"""The environment variables the docs name are the ones the code reads, with the defaults the code has:
every `ENERGAIZER_*` setting of the operator is a row of docs/operator.md's settings table (and of
docs/measured-energy.md's where that table lists it) with its real default; every `ENERGAIZER_*` variable the
code reads is named in the docs, and every one the docs (or the chart) name is read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from energaizer_operator.settings import ENV_VARS, OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = {p.name: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
CHART = [ROOT / "charts/energaizer/values.yaml", *sorted((ROOT / "charts/energaizer/templates").iterdir())]
VARIABLE = re.compile(r"\bENERGAIZER_[A-Z0-9_]*[A-Z0-9]\b")
FIELD_OF = {var: field for field, var in ENV_VARS.items()}


def _table(doc: str) -> dict[str, tuple[str, str]]:
    """variable -> (default cell, meaning cell) of the doc's `| variable | default | meaning |` rows."""
    rows = re.findall(r"^\| `(ENERGAIZER_[A-Z0-9_]+)` \| ([^|]+) \| (.+) \|$", DOCS[doc], flags=re.M)
    return {var: (default.strip(), meaning) for var, default, meaning in rows}


def _read_in_code() -> set[str]:
    """The variables the program reads: quoted names in the package sources (settings, catalog, CLI)."""
    found: set[str] = set()
    for path in [*(ROOT / "energaizer").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]:
        found |= set(re.findall(r"[\"'](ENERGAIZER_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text()))
    return found


# Read by tests/e2e (the real-cluster test's opt-in), not by the program: the docs tell how to run that test.
TEST_SWITCHES = {"ENERGAIZER_E2E", "ENERGAIZER_E2E_NAMESPACE"}


def _stated_default_is(cell: str, default: Any) -> bool:
    text = cell.strip("`")
    if default is None:
        return text.split()[0] in ("none", "unset")
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        return float(text) == default
    if isinstance(default, list | dict) and not default:
        return text in ("{}", "[]") or text.startswith("empty")
    return text == default


def test_every_operator_setting_is_in_the_table_with_its_default() -> None:
    table = _table("operator.md")
    assert set(table) == set(ENV_VARS.values()), (
        "docs/operator.md's table lists exactly the operator's settings"
    )
    defaults = OperatorSettings()
    for var, (cell, _) in table.items():
        default = getattr(defaults, FIELD_OF[var])
        assert _stated_default_is(cell, default), (
            f"operator.md: {var} default {cell!r}, the code's {default!r}"
        )


def test_measured_energy_settings_agree() -> None:
    table = _table("measured-energy.md")
    assert len(table) >= 5
    defaults = OperatorSettings()
    for var, (cell, _) in table.items():
        assert var in FIELD_OF, f"measured-energy.md: {var} is no operator setting"
        default = getattr(defaults, FIELD_OF[var])
        assert _stated_default_is(cell, default), (
            f"measured-energy.md: {var} default {cell!r}, the code's {default!r}"
        )


def test_every_variable_read_is_documented() -> None:
    read = _read_in_code()
    assert read >= set(ENV_VARS.values()) | {"ENERGAIZER_CATALOG", "ENERGAIZER_DEBUG"}
    docs = "\n".join(DOCS.values())
    missing = {var for var in read if not re.search(rf"\b{var}\b", docs)}
    assert not missing, f"read by the code, named in no doc: {sorted(missing)}"


@pytest.mark.parametrize("where", ["docs", "chart"])
def test_every_variable_named_is_read(where: str) -> None:
    texts = DOCS.values() if where == "docs" else [p.read_text() for p in CHART]
    named = {v for text in texts for v in VARIABLE.findall(text)}
    assert named, where
    unread = named - _read_in_code() - TEST_SWITCHES
    assert not unread, f"{where} name variables nothing reads: {sorted(unread)}"
