"""Packaging: one lock of exact versions for the image and CI, one Python version, no setuptools warnings."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from deploy_support import ROOT

CONSTRAINTS = ROOT / "constraints.txt"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version), f"not an exact pin: {line}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_constraints_pin_every_dependency_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [_name(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += [_name(r) for r in extra if not r.startswith("energaizer")]
    pins = _pins()
    assert [d for d in declared if d not in pins] == []
    assert "energaizer" not in pins


def test_image_and_ci_use_the_constraints_and_the_same_python() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip wheel [^\n]*--constraint constraints\.txt", dockerfile)
    assert re.search(r"COPY [^\n]*constraints\.txt", dockerfile)
    assert re.search(r"pip install [^\n]*--constraint constraints\.txt", ci)
    image = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)[.\d]*-slim[^@\s]*@sha256:[0-9a-f]{64}", dockerfile)
    assert image, "the base image is pinned by digest"
    ci_version = re.search(r"sys\.version_info\[:2\] != \((\d+), (\d+)\)", ci)
    assert ci_version and image.group(1) == f"{ci_version.group(1)}.{ci_version.group(2)}"
    assert "python3.11" in ci
    # the constraints were frozen for that Python: numpy/scipy wheels differ by Python version
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={image.group(1)}"


def test_license_is_an_spdx_string_and_the_build_has_no_setuptools_warning(tmp_path: Path) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "SetuptoolsDeprecationWarning" not in log, re.findall(r".*Deprecat.*", log)[:5]
