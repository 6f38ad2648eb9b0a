"""Fixtures for the deployment tests: the real Helm library, the repo's generators, the CRD."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import yaml
from deploy_support import CRD_PATH, MANIFESTS, ROOT, load_script


@pytest.fixture(scope="session")
def manifest_generator() -> ModuleType:
    return load_script(MANIFESTS / "generate.py")


@pytest.fixture(scope="session")
def dashboard_generator() -> ModuleType:
    return load_script(ROOT / "dashboards" / "generate.py")


@pytest.fixture(scope="session")
def render(manifest_generator: ModuleType):
    """``render(values) -> list of objects``: the chart through the real Helm template engine."""

    def _render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        return manifest_generator.render_chart(values, **kwargs)

    return _render


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())
