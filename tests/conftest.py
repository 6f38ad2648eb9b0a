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
