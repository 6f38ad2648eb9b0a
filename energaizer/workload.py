"""The workload spec: what to run (model, task, sizes, precision, GPUs) and the what-if knobs.

One pydantic model, used by the CLI, the CSV reader, the Python API and the operator's AIJob
spec (which mirrors it in camelCase).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from energaizer.catalog.schema import ModelArchitecture, Precision
from energaizer.errors import FieldValueError

# Spellings of a precision that tools and leaderboards write (PyTorch dtypes, vLLM's --dtype and
# quantisation names, ML.ENERGY's weight_precision), read as the model's name for it.
PRECISION_SYNONYMS: dict[str, str] = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "e4m3": "fp8",
    "mxfp4": "fp4",
    "nvfp4": "fp4",
}

Task = Literal["inference", "training"]
# how attention runs: fused (SDPA / FlashAttention; auto) or eager matmul + softmax kernels
Attention = Literal["auto", "flash", "eager"]
# how kernels reach the GPU: framework dispatch per kernel, a current serving engine's CUDA graphs, or an
# engine with heavy per-sequence host work per step (vLLM 0.5); auto: graphs for inference, eager for training
Execution = Literal["auto", "eager", "graphs", "legacy-engine"]

# Upper bounds that reject absurd input with a clear message instead of overflowing.
MAX_REQUESTS = 10**12
MAX_TOKENS_PER_REQUEST = 10**7
MAX_BATCH = 1_000_000
MAX_TRAINING_TOKENS = 1e16
MAX_GPUS = 65_536  # a training job (data x tensor parallel); the largest clusters are ~10^5 GPUs
# one inference replica (tensor x expert x data parallel): the largest published serving layouts
# (DeepSeek-V3 expert-parallel decode) use a few hundred GPUs
MAX_REPLICA_GPUS = 1_024


class InferenceSpec(BaseModel):
    """``requests`` requests of ``input_tokens`` prompt and ``output_tokens`` generated tokens each,
    served with continuous batching at up to ``batch_size`` concurrent requests.
    ``output_tokens == 0`` is prefill-only (encoders, embeddings): at most ``batch_size`` prompts per pass,
    the ``requests`` split evenly over the fewest passes (the last one is not padded).
    ``prompt_logits``: the vocabulary projection runs over every prompt token, not only the last one
    (a causal LM's plain ``forward()``, a scoring or log-prob pass such as an RLHF reference model's,
    a masked-LM head); without it a prefill-only pass ends at the last hidden state, as an embedding
    model or a ``*Model`` base class does."""

    model_config = ConfigDict(extra="forbid")
    requests: int = Field(default=1, ge=1, le=MAX_REQUESTS)
    input_tokens: int = Field(default=512, ge=1, le=MAX_TOKENS_PER_REQUEST)
    output_tokens: int = Field(default=256, ge=0, le=MAX_TOKENS_PER_REQUEST)
    batch_size: int = Field(default=1, ge=1, le=MAX_BATCH)
    prompt_logits: bool = Field(
        default=False,
        description="vocabulary projection over every prompt token (scoring / log-prob passes, a causal "
        "LM's forward(), a masked-LM head), not only the last",
    )


class TrainingSpec(BaseModel):
    """``steps`` optimizer steps of ``global_batch_size`` sequences of ``sequence_length`` tokens,
    or ``tokens`` in total (then steps = ceil(tokens / (global_batch_size * sequence_length)))."""

    model_config = ConfigDict(extra="forbid")
    tokens: float | None = Field(default=None, gt=0, le=MAX_TRAINING_TOKENS)
    steps: int | None = Field(default=None, ge=1, le=10**9)
    global_batch_size: int = Field(default=256, ge=1, le=10**7)
    sequence_length: int = Field(default=2048, ge=1, le=10**7)
    activation_recomputation: bool = False

    @model_validator(mode="after")
    def _one_size(self) -> TrainingSpec:
        if self.tokens is None and self.steps is None:
            raise FieldValueError("tokens", "training needs tokens or steps")
        if self.tokens is not None and self.steps is not None:  # two sizes: one would be ignored
            raise FieldValueError("steps", "give tokens or steps, not both")
        return self

    @property
    def total_steps(self) -> float:
        if self.steps is not None:
            return float(self.steps)
        assert self.tokens is not None
        return float(math.ceil(self.tokens / (self.global_batch_size * self.sequence_length)))

    @property
    def total_tokens(self) -> float:
        return self.total_steps * self.global_batch_size * self.sequence_length


class Workload(BaseModel):
    """A workload on ``gpu_count`` GPUs of one type (GPUs per replica).

    Inference shards the model tensor-parallel over all ``gpu_count`` GPUs, or over ``tensor_parallel``
    of them with the rest data parallel (engines of that size, each with its share of the sequences;
    :attr:`engine_tensor_parallel`, :attr:`inference_engines`). Training uses ``tensor_parallel``
    (default: the smallest power of two that fits memory, at most 8 and at most ``gpu_count``) and data
    parallelism over the rest.
    """

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="catalog name (HF id or alias)")
    architecture: ModelArchitecture | None = Field(default=None, description="custom architecture")
    task: Task = "inference"
    precision: Precision = "bf16"
    gpu_count: int = Field(default=1, ge=1, le=MAX_GPUS)
    tensor_parallel: int | None = Field(default=None, ge=1, le=MAX_GPUS)
    expert_parallel: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLICA_GPUS,
        description="inference: MoE experts placed whole on this many GPUs (vLLM --enable-expert-parallel: "
        "all GPUs of the replica); dispatch and combine all-to-all per MoE layer",
    )
    data_parallel: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLICA_GPUS,
        description="inference: data-parallel attention engines in the replica (vLLM --data-parallel-size), "
        "each tensor parallel over gpu_count / data_parallel GPUs with its share of the sequences",
    )
    inference: InferenceSpec | None = None
    training: TrainingSpec | None = None
    attention: Attention = Field(
        default="auto",
        description="fused attention (SDPA / FlashAttention, today's stacks; auto means flash) or eager "
        "matmul+softmax kernels (plain PyTorch code of the pre-SDPA era, opt-in)",
    )
    execution: Execution = Field(
        default="auto",
        description="how kernels reach the GPU: eager (framework dispatch per kernel: plain PyTorch, "
        "HF generate), graphs (a current serving engine replaying CUDA graphs, e.g. vLLM >= 0.6, with a "
        "host cost per decode step) or legacy-engine (a serving engine with heavy per-sequence Python "
        "work per step, e.g. vLLM 0.5); auto: graphs for inference at every batch size (prefill-only "
        "included), eager for training steps",
    )
    frequency_mhz: float | None = Field(default=None, gt=0, le=5000, description="what-if SM clock")
    power_limit_w: float | None = Field(default=None, gt=0, le=5000, description="what-if power cap per GPU")

    @field_validator("gpu_count")
    @classmethod
    def _replica_size(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("task", "inference") == "inference" and v > MAX_REPLICA_GPUS:
            raise ValueError(
                f"{v} GPUs for one inference replica; at most {MAX_REPLICA_GPUS} (more GPUs serve more "
                "replicas: estimate one replica)"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        if self.model is None and self.architecture is None:
            raise FieldValueError("model", "give model (a catalog name) or architecture")
        if self.task == "inference":
            if self.training is not None:
                raise FieldValueError("training", "task inference takes inference sizes, not training")
            if self.inference is None:
                self.inference = InferenceSpec()
        else:
            if self.inference is not None:
                raise FieldValueError("inference", "task training takes training sizes, not inference")
            if self.training is None:
                raise FieldValueError("training", "task training needs training sizes (tokens or steps)")
        if self.tensor_parallel is not None and self.gpu_count % self.tensor_parallel:
            raise FieldValueError("tensor_parallel", "gpu_count must be a multiple of tensor_parallel")
        ep, dp = self.expert_parallel or 1, self.data_parallel or 1
        if self.task == "training" and (ep > 1 or dp > 1):
            raise FieldValueError(
                "expert_parallel" if ep > 1 else "data_parallel",
                "expert_parallel and data_parallel describe an inference replica",
            )
        if self.gpu_count % dp:
            raise FieldValueError(
                "data_parallel", "gpu_count must be a multiple of data_parallel (engines of equal size)"
            )
        if ep not in (1, self.gpu_count):
            raise FieldValueError(
                "expert_parallel",
                "expert_parallel spans all GPUs of the replica (vLLM: tensor x data parallel): "
                f"1 or gpu_count ({self.gpu_count})",
            )
        return self

    @property
    def engine_tensor_parallel(self) -> int:
        """Inference: the GPUs each attention engine shards its heads over. With data-parallel engines or
        expert parallelism (vLLM: EP size = TP x DP) an engine spans ``gpu_count / data_parallel`` GPUs
        whatever ``tensor_parallel`` says (the ML.ENERGY leaderboard writes 1 for runs launched with the GPUs
        as the tensor-parallel size); else ``tensor_parallel``, or all GPUs of the replica."""
        if self.data_parallel or (self.expert_parallel or 1) > 1:
            return self.gpu_count // (self.data_parallel or 1)
        return self.tensor_parallel or self.gpu_count

    @property
    def inference_engines(self) -> int:
        """Inference: the replica's data-parallel attention engines, ``gpu_count / engine_tensor_parallel``
        (``data_parallel`` where given; with ``tensor_parallel`` below ``gpu_count`` the rest of the GPUs
        are engines of that size, as the rest of a training replica is data parallel)."""
        return self.gpu_count // self.engine_tensor_parallel

    @property
    def model_name(self) -> str:
        if self.architecture is not None:
            return self.architecture.id
        assert self.model is not None
        return self.model
