"""Fixtures shared by the estimator's tests (tests/kernels, timing, power, energy, memory_plan, ...)."""

from __future__ import annotations

import functools
import os
import sys
import typing
from collections.abc import Callable

import pytest
from gemm_support import one_gpu
from hypothesis import settings

from energaizer import Estimate, Workload, estimate
from energaizer.hardware import GpuTable
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice

OneEstimate = Callable[..., Estimate]

# The tests see the same environment on every machine: variables that the shell, the terminal or the CI
# service set, and that change what the product prints or reads, are removed for the whole run (a test that
# needs one sets it: monkeypatch.setenv, or run_cli's env=, which also passes it to the command).
# - the CLI's look: FORCE_COLOR, PY_COLORS, TTY_COMPATIBLE (or GITHUB_ACTIONS, for typer's help) turn a
#   pipe into a terminal, with escape codes in every line and help text; COLUMNS, LINES and TERMINAL_WIDTH
#   fold tables and help; NO_COLOR, TTY_INTERACTIVE and TYPER_USE_RICH (plain help, no panels) as well;
# - the product's own settings: ENERGAIZER_* (a catalog or profile of the developer's, a debug traceback),
#   except ENERGAIZER_E2E*, the opt-in to tests/e2e's real cluster; KUBERNETES_SERVICE_HOST/PORT: in a CI
#   pod, commands without a kubeconfig would find the pod's own cluster.
# At import, not in a fixture: typer reads TYPER_USE_RICH and its help's FORCE_COLOR, GITHUB_ACTIONS,
# PY_COLORS and TERMINAL_WIDTH once, when the test modules that import the CLI are collected.
ENVIRONMENT_LEFT_OUT = (
    "FORCE_COLOR",
    "PY_COLORS",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "GITHUB_ACTIONS",
    "COLUMNS",
    "LINES",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
    "TERMINAL_WIDTH",
    "TYPER_USE_RICH",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "_TYPER_STANDARD_TRACEBACK",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
)
# Removed from the process's own environment too, which the commands the tests start inherit: on a terminal,
# pytest imports readline before this file is read, and readline sets COLUMNS and LINES there (the terminal's
# size), not in os.environ.
_OWN = (n for n in os.environ if n.startswith("ENERGAIZER_") and not n.startswith("ENERGAIZER_E2E"))
for _name in (*ENVIRONMENT_LEFT_OUT, *_OWN):
    os.environ.pop(_name, None)
    os.unsetenv(_name)

# Python 3.11 collects a runtime-checkable Protocol's members anew at every isinstance() check against it
# (3.12 computes them once, at class creation). kmock matches every request against its reactions with
# such checks (``case`` patterns on its ``Selectable`` and ``SupportsBool`` protocols): in the operator
# tests, about half of this process's CPU (the kmock API server's) went to typing._get_protocol_attrs.
# A protocol's members are fixed when its class is created, so they are remembered per class, as 3.12 does.
if sys.version_info < (3, 12):
    typing._get_protocol_attrs = functools.cache(typing._get_protocol_attrs)  # type: ignore[attr-defined]
    typing._is_callable_members_only = functools.cache(typing._is_callable_members_only)  # type: ignore[attr-defined]

# Property tests draw the same examples on every run (CI must not turn red by the luck of a draw);
# `HYPOTHESIS_PROFILE=explore pytest ...` searches new random examples, many more of them.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _one(w: Workload, gpu: str, profile: CalibrationProfile | None = None) -> Estimate:
    (e,) = estimate(w, gpu, profile=profile)
    return e


@pytest.fixture
def one() -> OneEstimate:
    """``one(workload, gpu, profile=None)``: the estimate of one workload on one GPU type."""
    return _one


def _llama_serving(**kw) -> Workload:
    inf = {"requests": 200, "input_tokens": 512, "output_tokens": 128, "batch_size": 16}
    inf.update(kw.pop("inference", {}))
    return Workload(model=kw.pop("model", "llama-3.1-8b"), inference=inf, **kw)


def _serving(model: str, batch: int, gpus: int = 1, **kw) -> Workload:
    inf = {"requests": 8 * batch, "input_tokens": 256, "output_tokens": 512, "batch_size": batch}
    inf.update(kw.pop("inference", {}))
    return Workload(model=model, gpu_count=gpus, inference=inf, **kw)


def _prefill(**kw) -> Workload:
    inf = {"requests": 1, "input_tokens": 128, "output_tokens": 0, "batch_size": 1}
    inf.update(kw.pop("inference", {}))
    kw.setdefault("attention", "eager")
    kw.setdefault("execution", "eager")
    return Workload(model=kw.pop("model", "gpt2"), inference=inf, **kw)


@pytest.fixture
def llama_serving() -> Callable[..., Workload]:
    """``llama_serving(**changes)``: Llama-3.1-8B serving 200 requests of 512 + 128 tokens, 16 at once."""
    return _llama_serving


@pytest.fixture
def serving() -> Callable[..., Workload]:
    """``serving(model, batch, gpus=1, **changes)``: 8 x batch requests of 256 + 512 tokens, batch at once."""
    return _serving


@pytest.fixture
def prefill() -> Callable[..., Workload]:
    """``prefill(**changes)``: one GPT-2 forward pass over a 128-token prompt (no generation), as plain
    PyTorch code runs it (eager attention and dispatch unless ``changes`` say otherwise)."""
    return _prefill


@pytest.fixture
def device() -> Callable[[str, str], tuple[GpuTable, KernelDevice]]:
    """``device(gpu, precision)``: the hardware table of one GPU and a one-kernel device column for the
    math unit of ``precision``."""
    return one_gpu
