"""The JSON cache of the built-in catalog files: same entries as the YAML, never stale, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energaizer.catalog import loader
from energaizer.errors import InvalidInputError


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "energaizer"


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("catalog-*.json"))


def no_yaml(text: str, path: str):  # pragma: no cover - called only when a test fails
    raise AssertionError(f"{path} was parsed although its cache is there")


@pytest.mark.parametrize("builtin", [loader.BUILTIN_GPUS, loader.BUILTIN_MODELS], ids=["gpus", "models"])
def test_cached_entries_equal_the_yaml(
    cache_home: Path, builtin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = loader.read_catalog_file(builtin)
    first = loader._read_builtin_file(builtin)
    (written,) = cache_files(cache_home)
    assert written.name.startswith(f"catalog-{builtin.stem}-")
    monkeypatch.setattr(loader, "_parse_text", no_yaml)
    second = loader._read_builtin_file(builtin)
    assert first == second == reference


def test_an_edited_file_is_parsed_again(cache_home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "gpus.yaml"
    text = loader.BUILTIN_GPUS.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    before = loader._read_builtin_file(copy)
    (old_cache,) = cache_files(cache_home)
    copy.write_text(
        text.replace("NVIDIA H100 SXM5 80GB", "NVIDIA H100 SXM5 80GB (edited)", 1), encoding="utf-8"
    )
    after = loader._read_builtin_file(copy)
    assert [g.name for g in after.gpus] != [g.name for g in before.gpus]
    assert any(g.name.endswith("(edited)") for g in after.gpus)
    (new_cache,) = cache_files(cache_home)  # the superseded cache is removed
    assert new_cache != old_cache


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"format": 1}', b"[]", b'{"format": 1, "sha256": "%s", "data": {"gpus": [{"id": 3}]}}'],
)
def test_a_damaged_cache_falls_back_to_the_yaml(cache_home: Path, content: bytes) -> None:
    reference = loader.read_catalog_file(loader.BUILTIN_GPUS)
    loader._read_builtin_file(loader.BUILTIN_GPUS)
    (written,) = cache_files(cache_home)
    digest = json.loads(written.read_bytes())["sha256"]
    written.write_bytes(content.replace(b"%s", digest.encode()))
    assert loader._read_builtin_file(loader.BUILTIN_GPUS) == reference
    assert json.loads(written.read_bytes())["sha256"] == digest  # rewritten


def test_an_unwritable_cache_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file, not a folder: nothing can be written
    assert loader._read_builtin_file(loader.BUILTIN_GPUS) == loader.read_catalog_file(loader.BUILTIN_GPUS)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not a usable location either
    assert loader._read_builtin_file(loader.BUILTIN_GPUS) == loader.read_catalog_file(loader.BUILTIN_GPUS)
    assert not (Path.cwd() / "relative").exists()


def test_an_invalid_file_is_not_cached(cache_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "gpus.yaml"
    bad.write_text("gpus:\n  - id: x\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"gpus\[0\]"):
        loader._read_builtin_file(bad)
    assert cache_files(cache_home) == []
