"""Sanity checks of a workload's parallel layout that the per-field bounds of :class:`Workload` cannot see.

``gpu_count`` may be up to 65,536 (a training run), but an inference replica shards the model
tensor-parallel over all its GPUs, and a tensor-parallel group cannot be wider than the model has
attention heads; a training run cannot have more data-parallel ranks than sequences per step.
The CLI flags and the workload CSV reader both apply these checks, so ``--gpu-count 1000`` on an
8B model is an input error instead of a "feasible" 177 kW estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

from energaizer.catalog.schema import GPUSpec
from energaizer.errors import InvalidInputError, UnknownNameError
from energaizer.workload import Workload

# the training default: the smallest power of two that fits memory, at most this many GPUs
MAX_DEFAULT_TRAINING_TP = 8


def architecture_of(workload: Workload):  # type: ignore[no-untyped-def]
    """The workload's architecture (its own, or the catalog's); None for an unknown catalog name."""
    arch = workload.architecture
    if arch is None and workload.model is not None:
        from energaizer.catalog import get_model

        try:
            arch = get_model(workload.model)
        except UnknownNameError:
            return None  # reported as an unknown model by the estimator, with the allowed names
    return arch


def _attention_heads(workload: Workload) -> int | None:
    arch = architecture_of(workload)
    return getattr(arch, "heads", None) if arch is not None else None


# Far above any real model (the largest have ~200 layers, hidden 32k, vocab 256k), far below what overflows.
ARCHITECTURE_LIMITS: dict[str, float] = {
    "layers": 10_000,
    "hidden": 1_000_000,
    "heads": 100_000,
    "kv_heads": 100_000,
    "head_dim": 100_000,
    "ffn": 10_000_000,
    "moe_expert_ffn": 10_000_000,
    "vocab": 100_000_000,
    "moe_experts": 100_000,
    "moe_active_experts": 100_000,
    "params_b": 1_000_000,
}


def check_architecture(workload: Workload, where: str = "", field_prefix: str = "") -> None:
    """Reject a custom architecture with absurd sizes (``layers: 1e20`` would "not fit" in 10^19 GB)."""
    arch = workload.architecture
    if arch is None:
        return
    prefix = f"{where}: " if where else ""
    for name, limit in ARCHITECTURE_LIMITS.items():
        value = getattr(arch, name, None)
        if isinstance(value, int | float) and value > limit:
            raise InvalidInputError(
                f"{field_prefix}{name}", f"{prefix}{value:,} is absurd for a model (at most {limit:,.0f})"
            )


def check_prompt_logits(workload: Workload, where: str = "", flags: bool = False) -> None:
    """A scoring pass (``prompt_logits``) projects the prompt onto a vocabulary: the model needs one."""
    inf = workload.inference
    if inf is None or not inf.prompt_logits:
        return
    arch = architecture_of(workload)
    if arch is not None and (not arch.vocab or arch.cnn is not None):
        prefix = f"{where}: " if where else ""
        raise InvalidInputError(
            "--prompt-logits" if flags else "prompt_logits",
            f"{prefix}{workload.model_name} has no vocabulary to project the prompt onto (a vision model)",
        )


def check_knobs(workload: Workload, spec: GPUSpec, where: str = "") -> None:
    """The what-if clock and power limit within the GPU's ranges; ``where`` (a CSV line) prefixes the
    message, so that a long file's bad row is named, not only the GPU. The estimator raises this too."""
    if workload.frequency_mhz is None and workload.power_limit_w is None:
        return
    prefix = f"{where}: " if where else ""
    lo, hi = spec.clock_range_mhz
    clock = workload.frequency_mhz
    if clock is not None and not lo - 0.5 <= clock <= hi + 0.5:
        raise InvalidInputError(
            "frequency_mhz", f"{prefix}{clock:g} MHz is outside {spec.id}'s clock range {lo:g}-{hi:g} MHz"
        )
    lo, hi = spec.power_limit_range_w
    limit = workload.power_limit_w
    if limit is not None and not lo - 0.5 <= limit <= hi + 0.5:
        raise InvalidInputError(
            "power_limit_w", f"{prefix}{limit:g} W is outside {spec.id}'s power-limit range {lo:g}-{hi:g} W"
        )


def check_knobs_on_any(workload: Workload, specs: Sequence[GPUSpec]) -> None:
    """One workload asked of several GPU types: a what-if clock or power limit outside some types' ranges
    makes those types infeasible (the estimator's ``strict_knobs=False``); outside every one's, it is
    bad input, and this raises :func:`check_knobs`' error for the first, saying so."""
    if workload.frequency_mhz is None and workload.power_limit_w is None:
        return
    first: InvalidInputError | None = None
    for spec in specs:
        try:
            check_knobs(workload, spec)
        except InvalidInputError as exc:
            first = first or exc
        else:
            return
    if first is None:
        return
    if len(specs) == 1:
        raise first
    message = str(first).removeprefix(f"{first.field}: ")
    raise InvalidInputError(first.field, f"{message}, and outside the range of every other GPU type asked")


def check_layout(workload: Workload, where: str = "", flags: bool = False) -> None:
    """Raise :class:`InvalidInputError` when the GPUs per replica cannot be laid out for this model.

    ``where`` prefixes the message (a CSV line); ``flags`` names the CLI flags instead of the fields.
    """
    check_architecture(workload, where, "--model-file: " if flags else "")
    count_name = "--gpu-count" if flags else "gpu_count"
    tp_name = "--tensor-parallel" if flags else "tensor_parallel"
    prefix = f"{where}: " if where else ""
    heads = _attention_heads(workload)
    tp_given = workload.tensor_parallel
    model = workload.model_name
    if workload.task == "inference":
        tp = workload.engine_tensor_parallel
        name = tp_name if tp_given and tp == tp_given else count_name
        # with data-parallel attention engines, each shards the heads over its share of the replica
        unit = "per attention engine" if (workload.data_parallel or 1) > 1 else "per replica"
        if heads and tp > heads:
            raise InvalidInputError(
                name,
                f"{prefix}{tp} GPUs {unit}, but {model} has {heads} attention heads: an inference "
                f"engine shards them tensor-parallel, so at most {heads} GPUs {unit}",
            )
        if heads and heads % tp:
            fits = [d for d in (1, 2, 4, 8, 16, 32, 64) if heads % d == 0 and d <= heads]
            # with data-parallel engines or expert parallelism the split is implied, whatever tensor_parallel says
            split = "--gpu-count / --data-parallel" if flags else "gpu_count / data_parallel"
            implied = "" if name == tp_name or tp == workload.gpu_count else f" ({split})"
            raise InvalidInputError(
                name,
                f"{prefix}tensor parallel {tp}{implied} does not divide the {heads} attention heads of {model} "
                f"(serving engines need it to; e.g. {', '.join(map(str, fits))})",
            )
        return
    if heads and tp_given and tp_given > heads:
        raise InvalidInputError(
            tp_name, f"{prefix}{tp_given} exceeds the {heads} attention heads of {model} (at most {heads})"
        )
    if heads and tp_given and heads % tp_given:
        raise InvalidInputError(
            tp_name,
            f"{prefix}tensor parallel {tp_given} does not divide the {heads} attention heads of {model} "
            "(Megatron-LM and FSDP's tensor parallelism split them evenly)",
            [str(d) for d in range(1, heads + 1) if heads % d == 0],
        )
    training = workload.training
    if training is None:
        return
    tp_max = tp_given or min(MAX_DEFAULT_TRAINING_TP, workload.gpu_count, heads or MAX_DEFAULT_TRAINING_TP)
    data_parallel = workload.gpu_count // tp_max
    if data_parallel > training.global_batch_size:
        raise InvalidInputError(
            count_name,
            f"{prefix}{workload.gpu_count} GPUs make {data_parallel} data-parallel ranks, more than the "
            f"{training.global_batch_size} sequences per step (global batch size): every rank needs one",
        )
