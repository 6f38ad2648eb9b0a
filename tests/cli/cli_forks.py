"""Many ``energaizer`` invocations, each in a process of its own, without a cold start for each.

``python tests/cli/cli_forks.py JOBS FOLDER`` imports the CLI and the modules its commands import in their bodies
(numpy, and scipy through placement and calibration) once, then forks one child per invocation, at most
JOBS at a time. A child is what ``python -m energaizer ARGS`` is after its
imports: it runs the package's ``__main__`` (runpy, as ``-m`` does) with ``sys.argv`` set to the
invocation, in the invocation's working directory, stdin from /dev/null, stdout and stderr to files of
their own (in FOLDER), and ends with the status the interpreter would give (an uncaught exception: its traceback on
stderr, status 1). Started cold, the interpreter and the imports cost 0.2 to 0.7 s of CPU per invocation
(most of a malformed one's run): ~90 s of CPU for the ~190 malformed invocations of
test_cli_bad_input.py.

stdin: a JSON list of ``{"args": [...], "cwd": "folder" or null}``; stdout: a JSON list, in the same
order, of ``{"code": status (minus the signal's number when killed), "out": file, "err": file}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import traceback

# what every child would import: the CLI, and the modules its commands import in their bodies
import yaml  # noqa: F401

import energaizer.calibration.crossval
import energaizer.calibration.validate
import energaizer.cli.app
import energaizer.estimator
import energaizer.placement
import energaizer.planner.plan
import energaizer.whatif  # noqa: F401


def _exit_status(exc: SystemExit) -> int:
    """The status the interpreter gives for an uncaught ``SystemExit``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _child(args: list[str], cwd: str | None, out: str, err: str) -> None:
    status = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, path in ((1, out), (2, err)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        if cwd is not None:
            os.chdir(cwd)
        sys.path[0] = os.getcwd()  # as `python -m` puts it (this script's folder otherwise)
        sys.argv = ["energaizer", *args]
        try:
            runpy.run_module("energaizer", run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as exc:
            status = _exit_status(exc)
        except BaseException:
            traceback.print_exc()
            status = 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    finally:
        os._exit(status)


def main() -> None:
    jobs, folder = max(1, int(sys.argv[1])), sys.argv[2]
    cases = json.load(sys.stdin)
    results: list[dict | None] = [None] * len(cases)
    running: dict[int, int] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    nxt = 0
    while nxt < len(cases) or running:
        while nxt < len(cases) and len(running) < jobs:
            out, err = os.path.join(folder, f"{nxt}.out"), os.path.join(folder, f"{nxt}.err")
            results[nxt] = {"out": out, "err": err}
            pid = os.fork()
            if pid == 0:
                _child(cases[nxt]["args"], cases[nxt].get("cwd"), out, err)
            running[pid] = nxt
            nxt += 1
        pid, wait_status = os.wait()
        index = running.pop(pid)
        results[index]["code"] = os.waitstatus_to_exitcode(wait_status)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
