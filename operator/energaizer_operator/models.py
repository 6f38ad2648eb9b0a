"""The AIJob's ``spec`` and ``status`` as pydantic models (contract section 2, camelCase).

These models are the single source of truth: the operator validates every AIJob with them and the
CRD's openAPIV3Schema is generated from them (:mod:`energaizer_operator.crd`).
"""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from energaizer.catalog.schema import CNNSpec, ModelArchitecture, Precision
from energaizer.workload import (
    MAX_BATCH,
    MAX_GPUS,
    MAX_REQUESTS,
    MAX_TOKENS_PER_REQUEST,
    MAX_TRAINING_TOKENS,
    Attention,
    Execution,
)
from energaizer.workload import Workload as EstimatorWorkload


class Phase(StrEnum):
    """``status.phase`` of an AIJob (contract section 2)."""

    PENDING = "Pending"
    ESTIMATED = "Estimated"
    PLACED = "Placed"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INVALID = "Invalid"
    UNSCHEDULABLE = "Unschedulable"


PHASES: tuple[str, ...] = tuple(p.value for p in Phase)
# Phases the operator never leaves on its own (a spec change re-estimates an Invalid AIJob).
TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.INVALID})
Mode = Literal["steer", "annotate"]
Objective = Literal["energy", "time", "energy-delay"]
MAX_REPLICAS = 10_000


@functools.cache
def camel_twins(model: type[BaseModel]) -> dict[str, str]:
    """camelCase spelling -> field name of every multi-word field of ``model`` (``kvHeads`` -> ``kv_heads``)."""
    return {to_camel(name): name for name in model.model_fields if "_" in name}


def snake_architecture(data: Any) -> Any:
    """A custom architecture as the spec gives it -> the catalog's field names: camelCase as the rest of
    the spec (``kvHeads``, and in ``cnn`` ``imageSize``) or the catalog YAML's snake_case; one field
    spelt both ways with two values is an error naming both."""
    if not isinstance(data, dict):
        return data
    out = _snake(data, camel_twins(ModelArchitecture))
    if isinstance(out.get("cnn"), dict):
        out["cnn"] = _snake(out["cnn"], camel_twins(CNNSpec))
    return out


def _snake(data: dict[str, Any], twins: dict[str, str]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in twins}
    for camel, snake in twins.items():
        if camel not in data:
            continue
        if snake in data and data[snake] != data[camel]:
            raise ValueError(
                f"{camel} and {snake} are one field, given two values ({data[camel]!r}, {data[snake]!r})"
            )
        out[snake] = data[camel]
    return out


class _Camel(BaseModel):
    """camelCase on the wire (``populate_by_name`` lets Python code use snake_case too)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class InferenceSizes(_Camel):
    requests: int = Field(default=1, ge=1, le=MAX_REQUESTS, description="number of requests")
    input_tokens: int = Field(default=512, ge=1, le=MAX_TOKENS_PER_REQUEST, description="prompt tokens each")
    output_tokens: int = Field(
        default=256, ge=0, le=MAX_TOKENS_PER_REQUEST, description="generated tokens each"
    )
    batch_size: int = Field(default=1, ge=1, le=MAX_BATCH, description="concurrent requests")
    prompt_logits: bool = Field(
        default=False,
        description="project every prompt token onto the vocabulary (a scoring / log-prob pass), not only the last",
    )


class TrainingSizes(_Camel):
    tokens: float | None = Field(default=None, gt=0, le=MAX_TRAINING_TOKENS, description="total tokens")
    steps: int | None = Field(default=None, ge=1, le=10**9, description="optimizer steps (or tokens)")
    global_batch_size: int = Field(default=256, ge=1, le=10**7, description="sequences per step")
    sequence_length: int = Field(default=2048, ge=1, le=10**7, description="tokens per sequence")

    @model_validator(mode="after")
    def _one_size(self) -> TrainingSizes:
        if self.tokens is None and self.steps is None:
            raise ValueError("training needs tokens or steps")
        if self.tokens is not None and self.steps is not None:  # two sizes: one would be ignored
            raise ValueError("give tokens or steps, not both")
        return self


class WorkloadSpec(_Camel):
    """Mirrors :class:`energaizer.workload.Workload` (GPUs come from ``resources``)."""

    model: str | None = Field(default=None, description="catalog model name (Hugging Face id or alias)")
    architecture: ModelArchitecture | None = Field(
        default=None,
        description="custom architecture, instead of model: the catalog's fields, camelCase (kvHeads) or as "
        "the catalog YAML spells them (kv_heads)",
    )
    precision: Precision = "bf16"
    task: Literal["inference", "training"] = "inference"
    inference: InferenceSizes | None = None
    training: TrainingSizes | None = None
    frequency_mhz: float | None = Field(default=None, gt=0, le=5000, description="what-if SM clock")
    power_limit_w: float | None = Field(default=None, gt=0, le=5000, description="what-if power cap per GPU")
    tensor_parallel: int | None = Field(
        default=None,
        ge=1,
        le=MAX_GPUS,
        description="tensor-parallel degree, the rest of a replica's GPUs data parallel (training default: the "
        "smallest that fits, searched per GPU type; inference default: gpusPerReplica / dataParallel, each "
        "attention engine with its share of the sequences)",
    )
    expert_parallel: int | None = Field(
        default=None, ge=1, le=MAX_GPUS, description="inference: MoE experts over this many GPUs (1 or all)"
    )
    data_parallel: int | None = Field(
        default=None, ge=1, le=MAX_GPUS, description="inference: data-parallel attention engines per replica"
    )
    attention: Attention = Field(
        default="auto",
        description="flash (fused SDPA / FlashAttention; auto) or eager (matmul + softmax, opt-in)",
    )
    execution: Execution = Field(
        default="auto",
        description="eager (PyTorch dispatch per kernel), graphs (current serving engine), legacy-engine (vLLM "
        "0.5-era host work per sequence); auto: graphs for inference, eager for training",
    )

    @field_validator("architecture", mode="before")
    @classmethod
    def _architecture_keys(cls, value: Any) -> Any:
        return snake_architecture(value)

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if (self.model is None) == (self.architecture is None):
            raise ValueError("give exactly one of model or architecture")
        if self.task == "inference" and self.training is not None:
            raise ValueError("task inference takes inference sizes, not training")
        if self.task == "training":
            if self.inference is not None:
                raise ValueError("task training takes training sizes, not inference")
            if self.training is None:
                raise ValueError("task training needs training sizes (tokens or steps)")
        return self


class Resources(_Camel):
    gpus_per_replica: int = Field(default=1, ge=1, le=MAX_GPUS, description="GPUs per replica (one node)")
    replicas: int = Field(
        default=1, ge=1, le=MAX_REPLICAS, description="identical replicas (Job parallelism)"
    )


class PlacementSpec(_Camel):
    mode: Mode | None = Field(default=None, description="steer | annotate; default from operator settings")
    objective: Objective | None = Field(default=None, description="energy | time | energy-delay")
    candidate_gpu_types: list[str] = Field(default_factory=list, description="empty = every type present")
    deadline_seconds: float | None = Field(
        default=None, gt=0, description="types slower than this are infeasible"
    )
    max_wait_seconds: float | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description="how long the job may wait for its best GPU type before it takes the best free "
        "feasible type; default from the operator's settings (ENERGAIZER_MAX_WAIT_SECONDS)",
    )
    max_slowdown: float | None = Field(
        default=None,
        ge=0,
        le=10,
        description="slowdown budget of the power-cap advice (0.1 = at most 10 % longer); default 0.1",
    )


class AIJobSpec(_Camel):
    workload: WorkloadSpec
    resources: Resources = Field(default_factory=Resources)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    template: dict[str, Any] = Field(
        default_factory=dict, description="a batch/v1 JobSpec template (pod template) to run"
    )

    def to_workload(self) -> EstimatorWorkload:
        """The estimator's workload for ONE replica (gpu_count = gpusPerReplica)."""
        w = self.workload
        return EstimatorWorkload(
            model=w.model,
            architecture=w.architecture,
            task=w.task,
            precision=w.precision,
            gpu_count=self.resources.gpus_per_replica,
            inference=w.inference.model_dump() if w.inference is not None else None,
            training=w.training.model_dump() if w.training is not None else None,
            frequency_mhz=w.frequency_mhz,
            power_limit_w=w.power_limit_w,
            tensor_parallel=w.tensor_parallel,
            expert_parallel=w.expert_parallel,
            data_parallel=w.data_parallel,
            attention=w.attention,
            execution=w.execution,
        )

    @property
    def total_gpus(self) -> int:
        return self.resources.gpus_per_replica * self.resources.replicas


# --------------------------------------------------------------------------------------- status


class EstimateStatus(_Camel):
    """One GPU type's prediction; an infeasible type has null numbers (JSON has no NaN)."""

    gpu_type: str
    energy_joules: float | None = None
    duration_seconds: float | None = None
    average_power_watts: float | None = None
    feasible: bool
    reason: str = ""

    def wire(self) -> dict[str, Any]:
        """camelCase JSON with explicit nulls (``dump`` would drop them)."""
        return self.model_dump(mode="json", by_alias=True)


class PlacementStatus(_Camel):
    gpu_type: str
    job_name: str | None = None
    predicted_energy_joules: float
    savings_joules: float = Field(description="against the worst feasible type")
    worst_energy_joules: float | None = Field(
        default=None, description="predicted energy on the worst feasible type"
    )
    plain_scheduler_gpu_type: str | None = Field(
        default=None,
        description="the type a plain scheduler would have used: the first feasible type with room, most "
        "free GPUs first (kube-scheduler's LeastAllocated), ties by type id",
    )
    plain_scheduler_energy_joules: float | None = Field(
        default=None, description="predicted energy on plainSchedulerGpuType"
    )
    savings_vs_plain_scheduler_joules: float | None = Field(
        default=None, description="plainSchedulerEnergyJoules - predictedEnergyJoules (negative = costs more)"
    )
    recommended_power_limit_watts: float | None = Field(
        default=None, description="per-GPU power limit, least energy within spec.placement.maxSlowdown"
    )
    recommended_sm_clock_mhz: float | None = Field(
        default=None, description="the alternative knob: SM clock lock with the least energy in that budget"
    )
    predicted_energy_at_power_limit_joules: float | None = Field(
        default=None, description="predicted energy of the whole job at the recommended power limit"
    )
    # Extension: readable forms for `kubectl get aijobs` (printer columns cannot format numbers).
    predicted_duration_seconds: float | None = None
    predicted_energy: str | None = Field(default=None, description='readable, e.g. "1.2 MJ"')
    predicted_duration: str | None = Field(default=None, description='readable, e.g. "12m30s"')
    savings: str | None = Field(
        default=None,
        description='readable savings and share of the worst type\'s energy, e.g. "310 kJ (24%)"',
    )


class MeasuredDevice(_Camel):
    """One GPU the AIJob's pods held, as dcgm-exporter names it."""

    uuid: str
    hostname: str = ""
    model_name: str = ""
    pods: list[str] = Field(default_factory=list)
    seconds: float = Field(ge=0, description="time the job's pods held it")
    energy_joules: float = Field(description="counter increase over that time")
    interpolated_energy_joules: float = Field(
        default=0.0,
        ge=0,
        description="part of energyJoules apportioned from the sampling intervals straddling the pods' "
        "start and end (not read between two counter readings)",
    )


class MeasuredStatus(_Camel):
    """Measured energy of the Job the AIJob ran (contract section 5)."""

    energy_joules: float = Field(description="summed over the GPUs the job's pods held")
    duration_seconds: float = Field(ge=0, description="first pod start to last pod finish")
    average_power_watts: float = Field(description="energyJoules / durationSeconds")
    interpolated_energy_joules: float = Field(
        default=0.0, ge=0, description="part of energyJoules apportioned at the edges, summed over the GPUs"
    )
    interpolated_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="interpolatedEnergyJoules / energyJoules: the share resting on the constant-power "
        "assumption within a sampling interval (0: all read between counter readings)",
    )
    gpus: int = Field(ge=0, description="GPUs attributed")
    source: Literal["dcgm"] = "dcgm"
    gpu_type: str | None = Field(default=None, description="the GPU type the job was placed on")
    devices: list[MeasuredDevice] = Field(default_factory=list)


class Condition(_Camel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class AIJobStatus(_Camel):
    phase: Phase | None = None
    observed_generation: int | None = None
    estimates: list[EstimateStatus] | None = None
    placement: PlacementStatus | None = None
    measured: MeasuredStatus | None = None
    conditions: list[Condition] | None = None


class AIJob(_Camel):
    """The whole object, for the CRD schema (metadata is the API server's)."""

    spec: AIJobSpec
    status: AIJobStatus | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    """Wire form: camelCase, JSON types, no unset optional fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
