"""The install commands of the docs work with the chart as it is: every `helm install/upgrade` command
and every `--set` override the docs show is parsed by Helm's own strvals parser, passes the chart's
values.schema.json, lints and renders to valid Kubernetes objects; the kubectl commands name objects
and files that exist."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from deploy_support import CHART, KUBE_VERSIONS, MANIFESTS, ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RELEASE, NAMESPACE = "energaizer", "energaizer-system"
SET_FLAGS = {
    "--set": helm.parse_set_string,
    "--set-json": helm.parse_set_json,
    "--set-string": helm.parse_set_string_values,
}
HELM_VALUE_FLAGS = {"-n", "--namespace", "--version", "--timeout", *SET_FLAGS}
HELM_SWITCHES = {"--create-namespace", "--install", "--reuse-values", "--wait", "--atomic", "--dry-run"}


def _shell_commands(path: Path) -> list[str]:
    return _shell_commands_of(path.read_text())


def _shell_commands_of(text: str) -> list[str]:
    """The commands of the text's ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                commands.append(shlex.join(tokens))
    return commands


def _commands() -> list[tuple[str, str]]:
    return [(p.name, c) for p in DOCS for c in _shell_commands(p)]


def _inline_kubectl() -> list[tuple[str, str]]:
    return [(p.name, span) for p in DOCS for span in re.findall(r"`(kubectl [^`]+)`", p.read_text())]


def _overrides() -> list[tuple[str, str]]:
    """`--set ...` lines of code blocks (additions to the install command) and inline `--set ...` spans."""
    found = [(doc, c) for doc, c in _commands() if c.startswith("--set")]
    for p in DOCS:
        found += [(p.name, span) for span in re.findall(INLINE_SET, p.read_text()) if span not in REFUSED]
    return found


INLINE_SET = r"`(--set(?:-json|-string)? [^`]+)`"
# `--set ...` fails at install with `message`: the docs' examples of a refused value
REFUSED_EXAMPLE = re.compile(INLINE_SET + r" fails at install with\s+`([^`]+)`")
REFUSED = {m.group(1): m.group(2) for p in DOCS for m in REFUSED_EXAMPLE.finditer(p.read_text())}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _set_values(tokens: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for flag, arg in itertools.pairwise(tokens):
        if flag in SET_FLAGS:
            values = _merge(values, SET_FLAGS[flag](arg))
    return values


def _helm(command: str) -> tuple[str, str, str, dict[str, Any]]:
    """(release, chart, namespace, --set values) of a `helm install|upgrade` command."""
    tokens = shlex.split(command)
    positional, namespace, i = [], "default", 2
    while i < len(tokens):
        token = tokens[i]
        if token in HELM_VALUE_FLAGS:
            if token in ("-n", "--namespace"):
                namespace = tokens[i + 1]
            i += 2
        elif token in HELM_SWITCHES:
            i += 1
        else:
            assert not token.startswith("-"), f"flag {token!r} not understood by this test: {command}"
            positional.append(token)
            i += 1
    assert len(positional) == 2, f"expected RELEASE CHART: {command}"
    return positional[0], positional[1], namespace, _set_values(tokens)


def _check_values(values: dict[str, Any], release: str, namespace: str, render) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values))
    assert helm.lint(CHART, values, strict=True, kube_version="v1.33.0")["errors"] == []
    objects = render(values, name=release, namespace=namespace)
    for obj in objects:
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(obj, KUBE_VERSIONS[-1], strict=True)
    return objects


HELM_COMMANDS = [(d, c) for d, c in _commands() if re.match(r"helm (install|upgrade) ", c)]


def test_the_docs_show_the_install_commands() -> None:
    assert {d for d, _ in HELM_COMMANDS} >= {"deploy.md", "scheduler.md", "measured-energy.md"}
    assert len(_overrides()) >= 6


@pytest.mark.parametrize(("doc", "command"), HELM_COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in HELM_COMMANDS])
def test_helm_commands_install_the_chart(doc: str, command: str, render) -> None:
    release, chart, namespace, values = _helm(command)
    helm.validate_release_name(release)
    assert (ROOT / chart).resolve() == CHART.resolve(), f"{doc}: chart path {chart!r}"
    assert (release, namespace) == (RELEASE, NAMESPACE), f"{doc}: the docs' release and namespace"
    _check_values(values, release, namespace, render)


@pytest.mark.parametrize(("doc", "override"), _overrides(), ids=[f"{d}:{o[:60]}" for d, o in _overrides()])
def test_documented_overrides_are_accepted(doc: str, override: str, render) -> None:
    values = _set_values(shlex.split(override))
    assert values, f"{doc}: {override!r} sets nothing"
    _check_values(values, RELEASE, NAMESPACE, render)


def test_documented_refusals_are_refused_as_documented() -> None:
    assert REFUSED, "deploy.md shows a value the schema refuses, with the message"
    for override, message in REFUSED.items():
        values = _set_values(shlex.split(override))
        with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as refused:
            chart.validate_schema(chart.merge_values(values))
        assert message in str(refused.value), (override, str(refused.value))


def _is_set_image(tokens: list[str]) -> bool:
    """`kubectl [-n NS] set image deployment/NAME CONTAINER=IMAGE ...` (not a bare mention in prose)."""
    return any(a == "set" and b == "image" for a, b in itertools.pairwise(tokens)) and any(
        t.startswith("deployment/") for t in tokens
    )


def _kubectl(commands: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    out = []
    for doc, command in commands:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens: list[str] = []
        for token in [*lexer, "|"]:
            if token in ("|", "&&", ";", "||"):
                if tokens[:1] == ["kubectl"]:
                    out.append((doc, tokens))
                tokens = []
            else:
                tokens.append(token)
    return out


def test_kubectl_commands_name_what_exists(render) -> None:
    objects = render({}, name=RELEASE, namespace=NAMESPACE)
    deployments = {
        o["metadata"]["name"]: [c["name"] for c in o["spec"]["template"]["spec"]["containers"]]
        for o in objects
        if o["kind"] == "Deployment"
    }
    samples = {
        obj["metadata"]["name"]
        for obj in (yaml.safe_load(p.read_text()) for p in (MANIFESTS / "samples").glob("*.yaml"))
        if obj.get("kind") == "AIJob"
    }
    checked = 0
    for doc, tokens in _kubectl(_commands() + _inline_kubectl()):
        for flag, arg in itertools.pairwise(tokens):
            if flag in ("-f", "-k") and arg != "-":
                assert (ROOT / arg).exists(), f"{doc}: {shlex.join(tokens)}: no {arg}"
                checked += 1
        for token in tokens:
            if token.startswith("deployment/"):
                assert token.split("/", 1)[1] in deployments, f"{doc}: {shlex.join(tokens)}"
                checked += 1
        if _is_set_image(tokens):
            name = next(t for t in tokens if t.startswith("deployment/")).split("/", 1)[1]
            container = next(t for t in tokens if "=" in t and not t.startswith("-")).split("=", 1)[0]
            assert container in deployments[name], f"{doc}: no container {container!r} in {name}"
        if tokens[1:2] == ["get"] and len(tokens) > 3 and tokens[2] in ("aijob", "job"):
            assert tokens[3] in samples, f"{doc}: {shlex.join(tokens)}: no sample AIJob {tokens[3]!r}"
            checked += 1
    assert checked >= 10


def test_the_image_built_is_the_image_installed() -> None:
    """deploy.md builds and pushes one image; the Helm install, `kubectl set image` (README, deploy.md)
    name that image, at the chart's appVersion (the tag the chart uses when image.tag is empty)."""
    commands = dict.fromkeys(c for _, c in _commands() + _inline_kubectl())
    built = {shlex.split(c)[shlex.split(c).index("-t") + 1] for c in commands if c.startswith("docker build")}
    pushed = {shlex.split(c)[2] for c in commands if c.startswith("docker push")}
    assert len(built) == 1 and built == pushed, (built, pushed)
    (image,) = built
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    (install,) = [c for d, c in HELM_COMMANDS if d == "deploy.md" and c.startswith("helm install")]
    assert f"{_helm(install)[3]['image']['repository']}:{app_version}" == image
    set_image = [c for c in commands if c.startswith("kubectl") and _is_set_image(shlex.split(c))]
    assert set_image and all(f"operator={image}" in c for c in set_image), set_image


def test_readme_quick_start_runs_and_shows_what_it_says(tmp_path: Path) -> None:
    """README's first command: the install steps, then `energaizer estimate` (every catalog GPU) and
    `energaizer plan --demo` (the policies on the built-in trace), run here on the installed package."""
    from energaizer.catalog import list_gpus

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    (first,) = _shell_commands_of(section)[:1]
    steps: list[list[str]] = [[]]
    for token in shlex.split(first):
        if token == "&&":
            steps.append([])
        else:
            steps[-1].append(token)
    install = [["python3", "-m", "venv", ".venv"], [".", ".venv/bin/activate"], ["pip", "install", ".[plot]"]]
    assert steps[:3] == install, steps
    commands = steps[3:]
    assert [c[:2] for c in commands] == [["energaizer", "estimate"], ["energaizer", "plan"]], steps
    outputs = []
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(done.stdout)
    estimate, plan = outputs
    rows = {line.split()[1] for line in estimate.splitlines() if line.startswith("│")}
    assert rows >= {g.id for g in list_gpus()}, "every catalog GPU"
    assert "lowest energy" in estimate and "fastest" in estimate
    for policy in ("energy-aware", "first-fit", "fastest-gpu", "lower-bound"):
        assert f"│ {policy}" in plan, policy
