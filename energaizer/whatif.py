"""What-if sweeps over the GPU's operating point, and power-cap advice built on them.

``sweep`` evaluates one workload on one GPU type at a range of SM clocks and of power limits (one
vectorised estimator call); ``energaizer sweep`` prints it. ``recommend_power_cap`` picks, from the
same sweep, the power limit (and the SM clock) that use the least energy while the workload runs at
most ``max_slowdown`` longer than at the fastest setting, and reports the predicted energy there.
energaizer only advises: applying a cap is the job of a node agent (see docs/scheduler.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from energaizer.catalog.schema import GPUSpec
from energaizer.errors import InvalidInputError
from energaizer.estimator import GpuLike, ProfileLike, estimate_pairs, resolve_gpus
from energaizer.workload import Workload

DEFAULT_MAX_SLOWDOWN = 0.10
DEFAULT_POINTS = 12
MAX_SLOWDOWN_LIMIT = 10.0


@dataclass(frozen=True)
class SweepPoint:
    """The workload at one setting (``setting`` is MHz in a clock sweep, W in a power-limit sweep)."""

    setting: float
    energy_joules: float
    duration_seconds: float
    average_power_watts: float


@dataclass(frozen=True)
class Sweep:
    gpu: str
    clock: list[SweepPoint]  # setting = SM clock, MHz
    power_limit: list[SweepPoint]  # setting = power limit per GPU, W
    baseline: SweepPoint  # the GPU's defaults (no clock lock, default power limit); setting = limit, W
    feasible: bool
    reason: str = ""

    @property
    def fastest_duration_seconds(self) -> float:
        return min(p.duration_seconds for p in (*self.clock, *self.power_limit, self.baseline))


@dataclass(frozen=True)
class PowerCapAdvice:
    """The least-energy operating point of one workload on one GPU type within a slowdown budget."""

    gpu: str
    max_slowdown: float
    power_limit_watts: float  # per GPU
    energy_joules: float  # predicted at that power limit
    duration_seconds: float
    sm_clock_mhz: float  # the alternative knob: lock the SM clock here instead
    energy_at_sm_clock_joules: float
    baseline_energy_joules: float  # at the GPU's defaults
    baseline_duration_seconds: float

    @property
    def savings_joules(self) -> float:
        return max(0.0, self.baseline_energy_joules - self.energy_joules)


def _settings(spec: GPUSpec, points: int) -> tuple[np.ndarray, np.ndarray]:
    f_lo = spec.min_clock_mhz or 0.25 * spec.max_clock_mhz
    clocks = np.linspace(max(f_lo, 0.3 * spec.max_clock_mhz), spec.max_clock_mhz, points)
    lim_lo = spec.power_limit_min_w or 0.3 * spec.tdp_w
    limits = np.linspace(lim_lo, spec.power_limit_default_w, points)
    return clocks, limits


def _one_gpu(gpu: GpuLike) -> GPUSpec:
    specs = resolve_gpus(gpu)
    if len(specs) != 1:
        raise InvalidInputError("gpu", "give one GPU type")
    return specs[0]


def sweep(
    workload: Workload | Mapping[str, Any],
    gpu: GpuLike,
    *,
    points: int = DEFAULT_POINTS,
    profile: ProfileLike = None,
) -> Sweep:
    """``workload`` on ``gpu`` at ``points`` SM clocks and ``points`` power limits (min to default)."""
    if points < 2:
        raise InvalidInputError("points", "a sweep needs at least 2 points")
    base = workload if isinstance(workload, Workload) else Workload.model_validate(workload)
    spec = _one_gpu(gpu)
    clocks, limits = _settings(spec, points)
    defaults = base.model_copy(update={"frequency_mhz": None, "power_limit_w": None})
    variants = [base.model_copy(update={"frequency_mhz": float(f), "power_limit_w": None}) for f in clocks]
    variants += [base.model_copy(update={"power_limit_w": float(w), "frequency_mhz": None}) for w in limits]
    variants.append(defaults)
    res = estimate_pairs(variants, [spec] * len(variants), profile=profile)

    def point(i: int, setting: float) -> SweepPoint:
        return SweepPoint(
            float(setting),
            float(res.energy_joules[i]),
            float(res.duration_seconds[i]),
            float(res.average_power_watts[i]),
        )

    n = len(clocks)
    return Sweep(
        gpu=spec.id,
        clock=[point(i, clocks[i]) for i in range(n)],
        power_limit=[point(n + i, limits[i]) for i in range(n)],
        baseline=point(2 * n, spec.power_limit_default_w),
        feasible=bool(res.feasible[2 * n]),
        reason=res.reason[2 * n],
    )


def least_energy(
    points: Sequence[SweepPoint],
    max_slowdown: float,
    fastest_duration_seconds: float,
    max_duration_seconds: float | None = None,
) -> tuple[SweepPoint, SweepPoint]:
    """(the least-energy point, the least-energy point at most ``max_slowdown`` slower than the fastest
    and, if given, at most ``max_duration_seconds`` long)."""
    budget = fastest_duration_seconds * (1.0 + max_slowdown)
    if max_duration_seconds is not None:
        budget = min(budget, max_duration_seconds)
    within = [p for p in points if p.duration_seconds <= budget] or [
        min(points, key=lambda p: p.duration_seconds)
    ]
    return min(points, key=lambda p: p.energy_joules), min(within, key=lambda p: p.energy_joules)


def recommend_power_cap(
    workload: Workload | Mapping[str, Any],
    gpu: GpuLike,
    *,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    points: int = DEFAULT_POINTS,
    profile: ProfileLike = None,
    max_duration_seconds: float | None = None,
) -> PowerCapAdvice | None:
    """The power limit (and SM clock) that minimise energy within ``max_slowdown`` (0.1 = 10 % longer
    than the fastest setting) and, if given, ``max_duration_seconds`` (a deadline), or None when the
    workload cannot run on ``gpu`` at all."""
    if not 0.0 <= max_slowdown <= MAX_SLOWDOWN_LIMIT:
        raise InvalidInputError("max_slowdown", f"must be between 0 and {MAX_SLOWDOWN_LIMIT:g}")
    result = sweep(workload, gpu, points=points, profile=profile)
    if not result.feasible:
        return None
    fastest = result.fastest_duration_seconds
    _, cap = least_energy([*result.power_limit, result.baseline], max_slowdown, fastest, max_duration_seconds)
    _, clock = least_energy(result.clock, max_slowdown, fastest, max_duration_seconds)
    return PowerCapAdvice(
        gpu=result.gpu,
        max_slowdown=max_slowdown,
        power_limit_watts=cap.setting,
        energy_joules=cap.energy_joules,
        duration_seconds=cap.duration_seconds,
        sm_clock_mhz=clock.setting,
        energy_at_sm_clock_joules=clock.energy_joules,
        baseline_energy_joules=result.baseline.energy_joules,
        baseline_duration_seconds=result.baseline.duration_seconds,
    )
