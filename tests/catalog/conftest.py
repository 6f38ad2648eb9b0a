"""Shared fixtures of the catalog tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from energaizer.catalog import loader

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository root (as in CI); skip when absent."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not present")
    return path


@pytest.fixture(autouse=True)
def _isolated_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the built-in catalog only."""
    monkeypatch.delenv(loader.ENV_VAR, raising=False)
    loader.reset_extra()
    yield
    loader.reset_extra()
