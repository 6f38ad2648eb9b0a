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
    "energaizer.cli.extender_cmd",
    "energaizer.cli.measurements_cmd",
)

app = typer.Typer(
    name="energaizer",
    help="Estimate GPU energy of AI workloads before they run, and place them where they cost least.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"energaizer {package_version()}")
        raise typer.Exit(0)


def package_version() -> str:
    """The installed distribution's version (the source tree's ``__version__`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("energaizer")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without pip install
        from energaizer import __version__

        return __version__


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", help="print the version and exit", is_eager=True, callback=_version_callback
    ),
) -> None:
    """Estimate GPU energy of AI workloads before they run, and place them where they cost least."""


_register_all()


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit: the CLI's single way of reporting bad input."""
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def describe_exception(exc: BaseException) -> str | None:
    """One-line text for an input error, or None when ``exc`` is a bug (not the user's fault)."""
    from pydantic import ValidationError

    from energaizer.errors import EnergaizerError, pydantic_location, pydantic_message

    if isinstance(exc, EnergaizerError):
        return str(exc)
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(pydantic_location(err)) or exc.title
        return f"{loc}: {pydantic_message(err)}"
    if isinstance(exc, OSError) and getattr(exc, "filename", None):  # an output file or folder
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):  # a reader that did not name its field (a bug to fix there)
        return "input: a file is not UTF-8 text"
    if isinstance(exc, MemoryError):
        return "input: too large to hold in memory"
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


def _param_label(param: object) -> str | None:
    """``--demo-load`` for an option, ``MEASUREMENTS`` for an argument: what the user typed."""
    opts = [o for o in getattr(param, "opts", ()) or () if isinstance(o, str)]
    longs = [o for o in opts if o.startswith("--")]
    if longs:
        return longs[0]
    if opts and opts[0].startswith("-"):
        return opts[0]
    name = getattr(param, "name", None)
    return (
        name.upper()
        if isinstance(name, str) and getattr(param, "param_type_name", "") == "argument"
        else name
    )


def _usage_text(exc: Exception) -> str:
    """One line ``<field>: <message>`` for a click/typer usage error."""
    import re

    text = " ".join(exc.format_message().split())
    field = _param_label(getattr(exc, "param", None)) or getattr(exc, "option_name", None)
    # "Invalid value for '--x': ..." / "Invalid value for 'FILE': ...": the field says which
    text = re.sub(r"^Invalid value for '[^']*'(?: / '[^']*')*: ", "", text)
    text = text.removeprefix("Value error, ")
    m = re.match(r"^No such (option|command):? '?([^\s']+)'?\.?", text)
    if m:
        rest = text[m.end() :].strip()  # click's "Did you mean 'estimate'?", on a line of its own
        field, text = field or m.group(2), f"no such {m.group(1)}"
        if rest.startswith("("):  # "(Possible options: --json, --ops)"
            text += f" {rest}"
        elif rest:
            text += f"; {rest[0].lower()}{rest[1:]}"
        ctx = getattr(exc, "ctx", None)
        if m.group(1) == "command" and ctx is not None and hasattr(ctx.command, "list_commands"):
            text += f" (allowed: {', '.join(ctx.command.list_commands(ctx))})"
    field = field or "usage"
    if re.match(r"^Option '[^']*' requires (an argument|\d+ arguments)", text):
        text = "needs a value"
    elif m := re.match(r"^Input should be (greater|less) than( or equal to)? (\S+)", text):
        op = (">" if m.group(1) == "greater" else "<") + ("=" if m.group(2) else "")
        text = f"must be {op} {m.group(3)}" + text[m.end() :]
    elif "valid integer" in text:
        text = "not a whole number"
    elif "valid number" in text:
        text = "not a number"
    if text.startswith(("Missing option", "Missing argument")):
        text = "missing (required)"
    return f"{field}: {text}" if not text.startswith(f"{field}:") else text


# Commands that talk over sockets (the two servers; the Kubernetes API client): a peer that leaves must raise
# where the HTTP code handles it (a server's handler, urllib3's retry of a dropped connection), not end the
# process.
NETWORK_COMMANDS = frozenset({"operator", "extender", "export-measurements"})


def _end_quietly_when_the_reader_leaves() -> None:
    """A command whose output goes to a pipe ends as Unix filters do when the reader leaves (`energaizer
    estimate --from-csv big.csv --json | head`): killed by SIGPIPE, quietly, status 141 in the shell.
    Python ignores SIGPIPE, so the write would raise BrokenPipeError, which typer turns into a silent exit
    1, this CLI's status for a bug. For the program only (``main()`` without arguments), never a command of
    :data:`NETWORK_COMMANDS`."""
    import signal

    if hasattr(signal, "SIGPIPE"):  # not on Windows
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> None:
    """The ``energaizer`` program (``argv`` None: this process's arguments), or one command run by a caller
    in its own process (``argv`` given: the process's signal handling is left as it is)."""
    exit_cls, abort_cls, click_cls = _click_classes()
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # bare `energaizer`: the help, as kubectl and helm do; not an error
        args = ["--help"]
    if argv is None and args[0] not in NETWORK_COMMANDS:
        _end_quietly_when_the_reader_leaves()
    try:
        app(args=args, prog_name="energaizer", standalone_mode=False)
    except exit_cls as exc:
        raise SystemExit(exc.exit_code) from None
    except abort_cls:
        fail("aborted", 1)
    except click_cls as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group without a sub-command: its help
            typer.echo(exc.format_message())
            raise SystemExit(0) from None
        fail(_usage_text(exc), 2 if exc.exit_code == 1 else exc.exit_code)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:  # the reader left while this process wrote outside typer's own EPIPE handling
        _silence_stdout()
        raise SystemExit(141) from None
    except Exception as exc:
        text = describe_exception(exc)
        if text is not None:
            fail(text)
        _internal_error(exc)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - no stdout file descriptor
        pass


def _internal_error(exc: BaseException) -> None:
    """A bug, not the user's input: one line (the traceback with ENERGAIZER_DEBUG=1), exit 1."""
    import os

    if os.environ.get("ENERGAIZER_DEBUG", "").strip() not in ("", "0"):
        raise exc
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    message = " ".join(str(exc).split())[:300]
    fail(
        f"internal: {type(exc).__name__}{where}: {message} "
        "(a bug; ENERGAIZER_DEBUG=1 shows the traceback, please report it)",
        1,
    )


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
