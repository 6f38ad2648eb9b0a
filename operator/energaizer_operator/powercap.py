"""Power-cap advice for a placement: the per-GPU power limit (and SM clock) with the least predicted
energy within the job's slowdown budget (``spec.placement.maxSlowdown``, default 10 %) and its
``spec.placement.deadlineSeconds``, from the
estimator's sweep (:func:`energaizer.whatif.recommend_power_cap`).

The placer writes :func:`placement_fields` into ``status.placement``; the Kueue gate and steered Jobs
carry :func:`power_annotations`. energaizer never changes clocks or limits itself: a node agent may
apply the advice (docs/scheduler.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from energaizer.errors import InvalidInputError
from energaizer.whatif import DEFAULT_MAX_SLOWDOWN, recommend_power_cap
from energaizer_operator.models import AIJobSpec
from energaizer_operator.pod_workload import (
    ANNOTATION_ENERGY_AT_POWER_LIMIT,
    ANNOTATION_POWER_LIMIT,
    ANNOTATION_SM_CLOCK,
)

logger = logging.getLogger("energaizer_operator.powercap")


@dataclass(frozen=True)
class JobPowerAdvice:
    gpu_type: str
    power_limit_watts: float  # per GPU
    sm_clock_mhz: float
    energy_joules: float  # the whole job (all replicas) at that power limit
    duration_seconds: float
    max_slowdown: float


def advise(spec: AIJobSpec, gpu_type: str, profile: str | None = None) -> JobPowerAdvice | None:
    """The advice for ``spec`` on ``gpu_type`` (None when the type cannot run it)."""
    budget = spec.placement.max_slowdown
    budget = DEFAULT_MAX_SLOWDOWN if budget is None else budget
    advice = recommend_power_cap(
        spec.to_workload(),
        gpu_type,
        max_slowdown=budget,
        profile=profile,
        max_duration_seconds=spec.placement.deadline_seconds,  # a cap must not make it miss its deadline
    )
    if advice is None:
        return None
    return JobPowerAdvice(
        gpu_type=advice.gpu,
        power_limit_watts=advice.power_limit_watts,
        sm_clock_mhz=advice.sm_clock_mhz,
        energy_joules=advice.energy_joules * spec.resources.replicas,
        duration_seconds=advice.duration_seconds,
        max_slowdown=budget,
    )


def placement_fields(advice: JobPowerAdvice | None) -> dict[str, float]:
    """camelCase fields for ``status.placement`` (empty without advice)."""
    if advice is None:
        return {}
    return {
        "recommendedPowerLimitWatts": round(advice.power_limit_watts, 1),
        "recommendedSmClockMhz": round(advice.sm_clock_mhz, 1),
        "predictedEnergyAtPowerLimitJoules": advice.energy_joules,
    }


def power_annotations(advice: JobPowerAdvice | None) -> dict[str, str]:
    """Annotations for the Job and its pod template (empty without advice)."""
    if advice is None:
        return {}
    return {
        ANNOTATION_POWER_LIMIT: f"{advice.power_limit_watts:.0f}",
        ANNOTATION_SM_CLOCK: f"{advice.sm_clock_mhz:.0f}",
        ANNOTATION_ENERGY_AT_POWER_LIMIT: f"{advice.energy_joules:.6g}",
    }


def advise_spec(
    spec_body: Mapping[str, Any], gpu_type: str, profile: str | None = None
) -> JobPowerAdvice | None:
    """:func:`advise` for an AIJob's raw ``spec`` (as the placer's records hold it); None when the spec
    or the type gives no advice. Never raises for bad input: advice is optional."""
    try:
        return advise(AIJobSpec.model_validate(dict(spec_body)), gpu_type, profile)
    except (ValidationError, InvalidInputError) as exc:
        logger.info("no power-cap advice for %s: %s", gpu_type, exc)
        return None


def annotate_job(job: dict[str, Any], advice: JobPowerAdvice | None) -> None:
    """Add the advice's annotations to a Job body and its pod template (in place)."""
    extra = power_annotations(advice)
    if not extra:
        return
    meta = job.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **extra}
    pod_meta = job.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
    pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **extra}
