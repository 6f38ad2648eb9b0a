"""``energaizer export-measurements``: the measured AIJobs of a cluster as a measurement CSV (contract
sections 1 and 3), ready for ``energaizer calibrate`` / ``energaizer validate``.

One row per AIJob whose Job succeeded and that has ``status.measured`` (written by the operator from
dcgm-exporter, contract section 5). The row's workload is ONE replica (``gpu_count = gpusPerReplica``, with
the spec's parallel layout and code path), as the estimator models it; replicas run the same workload in parallel, so ``measured_energy_joules`` and
``measured_average_power_watts`` are the job's divided by ``replicas`` and ``measured_duration_seconds`` is
the job's. Carried-through columns: ``namespace``, ``aijob``, ``replicas``, ``measured_job_energy_joules``
(``status.measured.energyJoules`` as written), ``measured_gpus``, ``predicted_energy_joules`` (for the GPU type
the job ran on), ``source``.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

# CSV column -> (spec section, camelCase key)
_SIZES = {
    "requests": ("inference", "requests"),
    "input_tokens": ("inference", "inputTokens"),
    "output_tokens": ("inference", "outputTokens"),
    "batch_size": ("inference", "batchSize"),
    "tokens": ("training", "tokens"),
    "steps": ("training", "steps"),
    "global_batch_size": ("training", "globalBatchSize"),
    "sequence_length": ("training", "sequenceLength"),
}
_ARCH = {
    "arch_type": "arch_type",
    "params_b": "params_b",
    "layers": "layers",
    "hidden": "hidden",
    "heads": "heads",
    "kv_heads": "kv_heads",
    "ffn": "ffn",
    "vocab": "vocab",
    "moe_experts": "moe_experts",
    "moe_active_experts": "moe_active_experts",
    "moe_expert_ffn": "moe_expert_ffn",
    "head_dim": "head_dim",
}
# The layout and code-path columns (contract section 3 and the reader's extensions) -> the AIJob's
# spec.workload key: the estimate the operator made used them, so the calibration row must too.
_LAYOUT = {
    "tensor_parallel": "tensorParallel",
    "expert_parallel": "expertParallel",
    "data_parallel": "dataParallel",
    "attention": "attention",
    "execution": "execution",
}
LAYOUT_COLUMNS = (*_LAYOUT, "prompt_logits")
EXTRA_COLUMNS = (
    "namespace",
    "aijob",
    "replicas",
    "measured_job_energy_joules",
    "measured_gpus",
    "predicted_energy_joules",
    "source",
)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _predicted_energy_joules(status: Mapping[str, Any], gpu: str) -> Any:
    """The prediction for the GPU type the job ran on: the placement's, or, when Kueue admitted it on
    another allowed flavor (``measured.gpuType`` differs), that type's estimate; none known: empty."""
    placement = status.get("placement") or {}
    if gpu == placement.get("gpuType"):
        return placement.get("predictedEnergyJoules")
    return next(
        (
            e.get("energyJoules")
            for e in status.get("estimates") or []
            if e.get("gpuType") == gpu and e.get("feasible")
        ),
        None,
    )


def measurement_row(body: Mapping[str, Any], include_failed: bool = False) -> dict[str, str] | None:
    """One AIJob object -> one measurement CSV row (None when it has no measurement to export)."""
    status = body.get("status") or {}
    measured = status.get("measured")
    phase = status.get("phase")
    if not isinstance(measured, Mapping) or measured.get("energyJoules") is None:
        return None
    if phase != "Succeeded" and not (include_failed and phase == "Failed"):
        return None
    spec = body.get("spec") or {}
    meta = body.get("metadata") or {}
    workload = spec.get("workload") or {}
    resources = spec.get("resources") or {}
    replicas = int(resources.get("replicas") or 1)
    gpu = measured.get("gpuType") or (status.get("placement") or {}).get("gpuType") or ""
    energy = float(measured["energyJoules"])
    power = measured.get("averagePowerWatts")
    duration = measured.get("durationSeconds")
    if energy <= 0 or (duration is not None and float(duration) <= 0):
        return None  # a run the counter did not see (0 J over 0 s): no measurement, calibrate refuses it
    row: dict[str, Any] = {
        "model": workload.get("model") or "",
        "gpu": gpu,
        "gpu_count": int(resources.get("gpusPerReplica") or 1),
        "precision": workload.get("precision") or "",
        "task": workload.get("task") or "inference",
        "frequency_mhz": workload.get("frequencyMhz"),
        "power_limit_w": workload.get("powerLimitW"),
        "measured_energy_joules": energy / replicas,
        "measured_duration_seconds": measured.get("durationSeconds"),
        "measured_average_power_watts": float(power) / replicas if power is not None else None,
        "namespace": meta.get("namespace") or "",
        "aijob": meta.get("name") or "",
        "replicas": replicas,
        "measured_job_energy_joules": measured["energyJoules"],
        "measured_gpus": measured.get("gpus"),
        "predicted_energy_joules": _predicted_energy_joules(status, gpu),
        "source": f"dcgm:{meta.get('namespace') or ''}",
    }
    for column, (section, key) in _SIZES.items():
        row[column] = (workload.get(section) or {}).get(key)
    for column, key in _LAYOUT.items():
        row[column] = workload.get(key)
    row["prompt_logits"] = "true" if (workload.get("inference") or {}).get("promptLogits") else None
    arch = workload.get("architecture") if not workload.get("model") else None
    if arch:
        from energaizer_operator.models import snake_architecture

        # kvHeads as kv_heads: the spec takes either spelling (two values for one field: the operator
        # found the spec Invalid, nothing was measured)
        with contextlib.suppress(ValueError):
            arch = snake_architecture(arch)
    for column, key in _ARCH.items():
        row[column] = (arch or {}).get(key)
    return {k: _cell(v) for k, v in row.items()}


def write_csv(rows: Iterable[Mapping[str, str]], out: io.TextIOBase | Any) -> int:
    from energaizer.io.workload_csv import ARCH_COLUMNS, MEASURED_COLUMNS, WORKLOAD_COLUMNS

    rows = list(rows)
    columns = [*WORKLOAD_COLUMNS, *LAYOUT_COLUMNS]
    # a custom architecture: any of its columns (arch_type is optional, default decoder)
    if any(r.get(c) for r in rows for c in ARCH_COLUMNS):
        columns += list(ARCH_COLUMNS)
    columns += list(MEASURED_COLUMNS) + list(EXTRA_COLUMNS)
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    return len(rows)


def list_aijobs(namespaces: list[str], all_namespaces: bool) -> list[dict[str, Any]]:
    """AIJob objects of the cluster (in-cluster service account, else ``KUBECONFIG``), through the
    operator's API client (``energaizer_operator.kube``): paged, each page within the API timeout and sent
    once, so that an API server that does not answer is an error after that timeout, not a wait for ever;
    any failure (no credentials, a refused connection, a timeout, an error status) is one line."""
    import urllib3

    from energaizer.cli.common import operator_module
    from energaizer.errors import InvalidInputError

    kube = operator_module("kube", "export-measurements")
    relist = operator_module("relist", "export-measurements")
    try:
        kube.load_config()
    except kube.NoClusterConfigError as exc:
        raise InvalidInputError("KUBECONFIG", f"no cluster credentials: {exc}") from None
    # no namespace: cluster-wide
    paths = relist.collection_paths(
        "aijobs", [] if all_namespaces else namespaces or [kube.current_namespace()]
    )
    try:
        return [item for path in paths for item in kube.list_items(path)]
    except kube.ApiException as exc:
        reason = " ".join(str(exc.reason or "").split())
        raise InvalidInputError("cluster", f"listing AIJobs failed: HTTP {exc.status} {reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, timed out
        cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
        raise InvalidInputError("cluster", f"listing AIJobs failed: {cause}") from None


def register(app: typer.Typer) -> None:
    @app.command("export-measurements")
    def export_measurements(
        output: Annotated[Path, typer.Option("-o", "--output", help="measurement CSV to write")],
        namespace: Annotated[
            list[str] | None, typer.Option("--namespace", "-n", help="namespace to read (repeatable)")
        ] = None,
        all_namespaces: Annotated[
            bool, typer.Option("--all-namespaces", "-A", help="every namespace")
        ] = False,
        include_failed: Annotated[
            bool, typer.Option(help="also export AIJobs whose Job failed (their work did not complete)")
        ] = False,
    ) -> None:
        """Write the measured AIJobs (status.measured, from dcgm-exporter) as a measurement CSV for calibrate."""
        from energaizer.errors import InvalidInputError

        if namespace and all_namespaces:
            raise InvalidInputError("--namespace", "give --namespace or --all-namespaces, not both")
        # before the cluster is asked: a path that cannot be written is the user's to fix at once
        if output.is_dir():
            raise InvalidInputError("--output", f"{output} is a directory; give the CSV file to write")
        if not output.parent.is_dir():
            raise InvalidInputError("--output", f"folder {output.parent} does not exist")
        items = list_aijobs(list(namespace or []), all_namespaces)
        rows = [r for body in items if (r := measurement_row(body, include_failed)) is not None]
        rows.sort(key=lambda r: (r["namespace"], r["aijob"]))
        try:
            with output.open("w", newline="", encoding="utf-8") as fh:
                n = write_csv(rows, fh)
        except OSError as exc:  # a full disk, a read-only file system
            raise InvalidInputError("--output", f"cannot write {output}: {exc.strerror or exc}") from None
        typer.echo(f"wrote {output}: {n} measured AIJob(s) of {len(items)}")
