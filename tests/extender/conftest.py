"""Fixtures: one real extender process (no node cache) shared by the module's request tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from extender_support import ExtenderProcess


@pytest.fixture(scope="module")
def extender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtenderProcess]:
    proc = ExtenderProcess(tmp_path_factory.mktemp("extender"), "--no-node-cache")
    yield proc
    proc.stop()
