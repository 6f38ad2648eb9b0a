"""The command line the docs describe is the one that exists: every option of every command is named in
README.md or docs/, every `energaizer CMD ...` line of the docs uses only options CMD has, and a default the
docs state next to an option (`--flag` (default X)) is the option's default."""

from __future__ import annotations

import enum
import re
from pathlib import Path

import click
import pytest
import typer

from energaizer.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = {p.name: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
ALL_DOCS = "\n".join(DOCS.values())
COMMANDS: dict[str, click.Command] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
HELP = {"--help", "-h"}


def _options(command: click.Command) -> dict[str, click.Parameter]:
    """Every spelling of every option (``--force`` and ``--no-force`` alike) -> its parameter."""
    return {o: p for p in command.params for o in [*p.opts, *p.secondary_opts] if o.startswith("-")}


def _named(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def _code() -> list[tuple[str, str]]:
    """(doc, text) of every inline code span and every line of a shell code block."""
    out = []
    for doc, text in DOCS.items():
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
            out += [(doc, line) for line in block.replace("\\\n", " ").splitlines()]
        out += [(doc, span.replace("\\|", "|")) for span in re.findall(r"`([^`\n]+)`", text)]
    return out


def _command_lines() -> list[tuple[str, str, list[str]]]:
    """(doc, command, flags) of each `energaizer CMD ...` in the docs' code, up to a pipe, `&&`, `;` or `#`."""
    found = []
    for doc, code in _code():
        for m in re.finditer(r"(?<![\w/.-])energaizer ([a-z][a-z-]*)\b([^|&;#]*)", code):
            if m.group(1) in COMMANDS:
                found.append((doc, m.group(1), re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", m.group(2))))
    return found


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_documented(name: str) -> None:
    assert _named(f"energaizer {name}", ALL_DOCS), f"`energaizer {name}` is in no doc"
    for param in COMMANDS[name].params:
        spellings = [o for o in [*param.opts, *param.secondary_opts] if o.startswith("-")]
        if spellings:  # `-o` or `--output`; `--force` or `--no-force`
            assert any(_named(o, ALL_DOCS) for o in spellings), f"energaizer {name} {spellings[0]}: in no doc"


def test_command_lines_of_the_docs_use_options_that_exist() -> None:
    lines = _command_lines()
    assert len(lines) >= 40 and {c for _, c, _ in lines} == set(COMMANDS), "the docs show every command"
    for doc, name, flags in lines:
        unknown = set(flags) - _options(COMMANDS[name]).keys() - HELP
        assert not unknown, f"{doc}: energaizer {name} has no {sorted(unknown)}"


def _default_text(value: object) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value)


def test_stated_defaults_are_the_defaults() -> None:
    """`--flag ...` (default X) and `--flag ...` (..., default X) in the docs: X is the option's default
    on every command that has the option."""
    pattern = re.compile(r"`(--[a-z][\w-]*)[^`]*` \((?:[\w ]+, )?default `?([^`);,]+?)`?[);,]")
    checked = 0
    for doc, text in DOCS.items():
        for flag, stated in pattern.findall(text):
            params = [_options(c)[flag] for c in COMMANDS.values() if flag in _options(c)]
            assert params, f"{doc}: no command has {flag}"
            for param in params:
                default = param.default
                if isinstance(default, float | int) and not isinstance(default, bool):
                    assert float(stated.split()[0]) == default, (
                        f"{doc}: {flag} default {stated!r} != {default}"
                    )
                else:
                    assert stated.strip() == _default_text(default), f"{doc}: {flag} default {stated!r}"
                checked += 1
    assert checked >= 12


def test_the_command_line_parser_reads_the_documented_lines() -> None:
    """The extraction above is not vacuous: it finds the README's estimate line with its flags."""
    lines = _command_lines()
    readme = [flags for doc, name, flags in lines if doc == "README.md" and name == "estimate"]
    assert any({"--model", "--gpu", "--requests", "--batch-size"} <= set(f) for f in readme), readme
