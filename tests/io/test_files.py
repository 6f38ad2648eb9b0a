"""``energaizer.files``: the readers of user files refuse a mapping that names a key twice (YAML and JSON
parsers keep the last value and drop the first silently)."""

from __future__ import annotations

import json

import pytest
import yaml

from energaizer.files import load_yaml, unique_keys


def test_load_yaml_reads_what_safe_load_reads() -> None:
    text = "a: 1\nb: {c: [1, 2], d: .nan}\nbase: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  x: 3\n"
    got, want = load_yaml(text), yaml.safe_load(text)
    assert got.keys() == want.keys() and got["merged"] == {"x": 3, "y": 2}  # a merge key's value overridden
    assert got["b"]["c"] == [1, 2]


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("layers: 32\nhidden: 4096\nlayers: 4\n", "'layers'", 3),
        ("- {gpu: h100-sxm, nodes: 1, gpu: l4}\n", "'gpu'", 1),
        ("outer:\n  inner: 1\n  inner: 2\n", "'inner'", 3),
        ("1: a\n1.0: b\n", "1.0", 2),  # equal keys spelled differently
    ],
)
def test_load_yaml_refuses_a_key_named_twice(text: str, key: str, line: int) -> None:
    with pytest.raises(yaml.YAMLError) as err:
        load_yaml(text)
    assert err.value.problem == f"key {key} appears twice in one mapping"  # type: ignore[attr-defined]
    assert err.value.problem_mark.line + 1 == line  # type: ignore[attr-defined]


def test_unique_keys_as_the_json_object_hook() -> None:
    assert json.loads('{"a": {"b": 1}, "c": 2}', object_pairs_hook=unique_keys) == {"a": {"b": 1}, "c": 2}
    with pytest.raises(ValueError, match="key 'b' appears twice in one object"):
        json.loads('{"a": {"b": 1, "b": 2}}', object_pairs_hook=unique_keys)
