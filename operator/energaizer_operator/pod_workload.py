"""The work a pod states about itself: the ``energaizer.io/workload`` annotation (JSON of an AIJob's
``spec.workload``) plus its GPUs per pod (its ``nvidia.com/gpu`` limit), as an :class:`AIJobSpec`.

Shared by the scheduler extender (pods) and the Kueue admission gate (a Job's pod template).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from energaizer.errors import InvalidInputError, pydantic_location, pydantic_message
from energaizer.files import unique_keys
from energaizer.io.layout import check_layout
from energaizer_operator.inventory import pod_gpu_request
from energaizer_operator.models import AIJobSpec, WorkloadSpec

ANNOTATION_WORKLOAD = "energaizer.io/workload"
# Power-cap advice (extension): the per-GPU power limit that minimises energy within the slowdown budget.
ANNOTATION_POWER_LIMIT = "energaizer.io/recommended-power-limit-watts"
ANNOTATION_SM_CLOCK = "energaizer.io/recommended-sm-clock-mhz"
ANNOTATION_ENERGY_AT_POWER_LIMIT = "energaizer.io/predicted-energy-at-power-limit-joules"


def _not_a_json_number(name: str) -> float:
    """``json.loads`` takes NaN and Infinity, which JSON (and the API server) does not."""
    raise InvalidInputError(ANNOTATION_WORKLOAD, f"not JSON: {name} is not a JSON number")


def parse_workload(text: str) -> WorkloadSpec:
    """The annotation's JSON -> a validated ``WorkloadSpec``; bad input raises ``InvalidInputError``
    naming the annotation and the field; a key named twice in one object is invalid (``unique_keys``), not
    the last value kept silently."""
    try:
        data = json.loads(text, parse_constant=_not_a_json_number, object_pairs_hook=unique_keys)
    except InvalidInputError:
        raise
    except (ValueError, TypeError) as exc:  # ValueError: also a key named twice, an integer of > 4,300 digits
        raise InvalidInputError(ANNOTATION_WORKLOAD, f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError(ANNOTATION_WORKLOAD, "not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInputError(ANNOTATION_WORKLOAD, "must be a JSON object (an AIJob spec.workload)")
    try:
        spec = WorkloadSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        where = f"{ANNOTATION_WORKLOAD}: {loc}" if loc else ANNOTATION_WORKLOAD
        raise InvalidInputError(where, err.get("msg", "invalid value")) from None
    if spec.model is not None:
        from energaizer.catalog import get_model

        try:
            get_model(spec.model)
        except InvalidInputError as exc:
            raise InvalidInputError(ANNOTATION_WORKLOAD, str(exc)) from None
    return spec


def workload_key(spec: WorkloadSpec, gpus_per_pod: int) -> str:
    """A canonical text for (workload, GPUs per pod): equal work gives an equal key."""
    return json.dumps([spec.model_dump(mode="json", exclude_none=True), gpus_per_pod], sort_keys=True)


def job_spec(workload: WorkloadSpec, gpus_per_pod: int, replicas: int = 1, **placement: Any) -> AIJobSpec:
    """The AIJob spec equivalent to ``replicas`` pods of ``gpus_per_pod`` GPUs doing ``workload`` each. What
    the estimator checks across the workload and the pod's GPUs (a tensor or data parallelism that does not
    divide them, a split the attention heads cannot take) raises ``InvalidInputError`` naming the annotation."""
    try:
        # the pod's GPU count (up to inventory.MAX_GPUS_PER_OBJECT) or replicas beyond what an AIJob takes
        # fail here: the pod's bad input too, not an error of the caller
        spec = AIJobSpec(
            workload=workload,
            resources={"gpusPerReplica": gpus_per_pod, "replicas": replicas},
            placement=placement,
        )
        check_layout(spec.to_workload())
    except ValidationError as exc:
        err = exc.errors()[0]
        parts = [to_camel(part) for part in pydantic_location(err)]
        if parts[:1] == ["resources"]:  # the pod's own counts, not a field of the annotation
            what = {"gpusPerReplica": "GPUs per pod", "replicas": "pods"}.get(parts[-1], parts[-1])
            raise InvalidInputError(ANNOTATION_WORKLOAD, f"{what} {pydantic_message(err)}") from None
        loc = ".".join(parts)
        where = f"{ANNOTATION_WORKLOAD}: {loc}" if loc else ANNOTATION_WORKLOAD
        raise InvalidInputError(where, f"{pydantic_message(err)} ({gpus_per_pod} GPUs per pod)") from None
    except InvalidInputError as exc:
        raise InvalidInputError(ANNOTATION_WORKLOAD, f"{exc} ({gpus_per_pod} GPUs per pod)") from None
    return spec


def pod_gpus(pod_spec: Mapping[str, Any], gpu_resource: str) -> int:
    """GPUs per pod from its containers' limits (``inventory.pod_gpu_request``)."""
    return pod_gpu_request(pod_spec, gpu_resource)
