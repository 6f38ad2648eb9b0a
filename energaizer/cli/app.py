"""Entry point of the ``energaizer`` command.

Each sub-command lives in its own module under ``energaizer.cli`` and exposes ``register(app)``.
Modules import only typer at top level; heavy imports (numpy, scipy, kopf) happen inside the
command body so that ``energaizer --help`` starts fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "energaizer.cli.estimate_cmd",
    "energaizer.cli.catalog_cmd",
    "energaizer.cli.calibrate_cmd",
    "energaizer.cli.sweep_cmd",
    "energaizer.cli.plan_cmd",
    "energaizer.cli.operator_cmd",
    "energaizer.cli.measurements_cmd",
)

app = typer.Typer(
    name="energaizer",
    help="Estimate GPU energy of AI workloads before they run, and place them where they cost least.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command module not written yet is skipped, not fatal
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_all()


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit: the CLI's single way of reporting bad input."""
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def describe_exception(exc: BaseException) -> str | None:
    """One-line text for an input error, or None when ``exc`` is a bug (not the user's fault)."""
    from pydantic import ValidationError

    from energaizer.errors import EnergaizerError

    if isinstance(exc, EnergaizerError):
        return str(exc)
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or exc.title
        return f"{loc}: {err.get('msg', 'invalid value')}"
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return f"{getattr(exc, 'filename', '') or 'file'}: {exc.strerror or exc}"
    return None


def _click_classes() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(Exit, Abort, ClickException) classes of click and of typer's vendored copy, if any."""
    try:
        from typer._click import exceptions as vendored  # typer >= 0.20 ships its own click
    except ImportError:  # pragma: no cover - older typer uses click itself
        vendored = None
    if vendored is not None:
        # click itself only raises where it is loaded (a command module may use it): no need to import it
        mods = [m for m in (vendored, sys.modules.get("click.exceptions")) if m is not None]
    else:  # pragma: no cover
        import click

        mods = [click.exceptions]

    def pick(name: str) -> tuple[type, ...]:
        found = [getattr(m, name, None) for m in mods] + [getattr(typer, name, None)]
        return tuple({c for c in found if isinstance(c, type)})

    return pick("Exit"), pick("Abort"), pick("ClickException")


def _usage_text(exc: Exception) -> str:
    text = exc.format_message().replace("\n", " ").strip()
    param = getattr(exc, "param", None)
    name = getattr(param, "name", None)
    if name and not text.startswith(name):
        text = f"{name}: {text.removeprefix('Value error, ')}"
    return text


def main(argv: list[str] | None = None) -> None:
    exit_cls, abort_cls, click_cls = _click_classes()
    try:
        app(args=argv, standalone_mode=False)
    except exit_cls as exc:
        raise SystemExit(exc.exit_code) from None
    except abort_cls:
        fail("aborted", 1)
    except click_cls as exc:
        fail(_usage_text(exc), exc.exit_code)
    except (KeyboardInterrupt, BrokenPipeError):
        raise SystemExit(130) from None
    except Exception as exc:
        text = describe_exception(exc)
        if text is None:
            raise
        fail(text)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
