"""docs/deploy.md's values table is the chart's values: every key it names exists in values.yaml and every
value is in it; a value the chart passes to the operator or the extender as an `ENERGAIZER_*` variable
names that variable in its row, with the operator's default where the row states one (`null` (the
operator's N)); and the operator's settings without a value of their own are named in `operator.extraEnv`'s
row, the way to set them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from energaizer_operator.settings import ENV_VARS, OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "energaizer"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
# The variables whose value is a file the chart writes from a value (a ConfigMap), not the value itself.
FROM_FILE = {"ENERGAIZER_PRODUCT_MAP": "gpu.productMap"}


def _exists(key: str) -> bool:
    node: Any = VALUES
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _leaves(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _keys(cell: str) -> list[str]:
    """The keys of a table row's first cell: `a.b` / `.c` (a sibling, or a child of `a.b`), and `x.` / `y.`
    `k` (the key k under each prefix)."""
    keys: list[str] = []
    prefixes: list[str] = []
    last: list[str] = []
    for token in re.findall(r"`([^`]+)`", cell):
        if token.endswith("."):
            prefixes.append(token)
        elif token.startswith("."):
            for base in last:
                parent = base.rsplit(".", 1)[0] + token if "." in base else token[1:]
                keys.append(next((k for k in (base + token, parent) if _exists(k)), base + token))
        else:
            last = [p + token for p in prefixes] if prefixes else [token]
            keys += last
    return keys


def _rows() -> list[tuple[list[str], str, str]]:
    """(keys, default cell, meaning cell) of every row of the Values table."""
    section = DEPLOY.split("### Values", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            key_cell, default, meaning = line.strip("| ").split(" | ", 2)
            rows.append((_keys(key_cell), default, meaning))
    return rows


def _env_from_templates() -> dict[str, set[str]]:
    """`ENERGAIZER_*` variable -> the values keys the operator's and the extender's templates set it from."""
    found: dict[str, set[str]] = {}
    for template in ("deployment.yaml", "extender.yaml"):
        lines = (CHART / "templates" / template).read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*- name: (ENERGAIZER_[A-Z0-9_]+)$", line)
            if m:
                context = lines[i + 1] + (lines[i - 1] if "{{- if" in lines[i - 1] else "")
                keys = set(re.findall(r"\.Values\.([\w.]+)", context)) or {FROM_FILE[m.group(1)]}
                found.setdefault(m.group(1), set()).update(keys)
    return found


def test_table_keys_exist_and_every_value_is_in_the_table() -> None:
    rows = _rows()
    assert len(rows) >= 30
    named = {k for keys, _, _ in rows for k in keys}
    assert all(_exists(k) for k in named), sorted(k for k in named if not _exists(k))
    missing = [
        leaf for leaf in _leaves(VALUES) if not any(leaf == k or leaf.startswith(f"{k}.") for k in named)
    ]
    assert not missing, f"values in no row of docs/deploy.md: {missing}"


def test_the_chart_sets_operator_settings_only() -> None:
    env = _env_from_templates()
    assert len(env) >= 15
    assert set(env) <= set(ENV_VARS.values()), set(env) - set(ENV_VARS.values())
    assert all(_exists(k) for keys in env.values() for k in keys)


@pytest.mark.parametrize(("variable", "keys"), sorted(_env_from_templates().items()))
def test_each_value_row_names_its_variable(variable: str, keys: set[str]) -> None:
    field = {v: f for f, v in ENV_VARS.items()}[variable]
    default = getattr(OperatorSettings(), field)
    for key in keys:
        rows = [(d, m) for ks, d, m in _rows() if key in ks]
        assert rows, f"{key} is in no row"
        assert any(variable in m for _, m in rows), (
            f"docs/deploy.md: the row of {key} does not name {variable}"
        )
        for cell, _ in rows:
            stated = re.search(r"the operator's ([\d.]+)", cell)
            if stated:
                assert float(stated.group(1)) == default, (
                    f"{key}: {cell!r}, the operator's default is {default}"
                )


def test_settings_without_a_value_are_set_through_extra_env() -> None:
    (extra,) = [m for keys, _, m in _rows() if keys == ["operator.extraEnv"]]
    no_value = set(ENV_VARS.values()) - set(_env_from_templates())
    assert no_value, "every setting has a value"
    missing = {v for v in no_value if v not in extra}
    assert not missing, f"operator.extraEnv's row does not name {sorted(missing)}"
