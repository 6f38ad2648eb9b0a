"""The estimator's public functions: workloads x GPU types -> time, power, energy.

All three functions share one vectorised core (``energaizer.pipeline.run``) that evaluates
every (workload, GPU) pair at once with NumPy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from energaizer.catalog import get_gpu, list_gpus
from energaizer.catalog.schema import GPUSpec
from energaizer.profile import CalibrationProfile, load_profile
from energaizer.result import Estimate, EstimateBatch
from energaizer.workload import Workload

GpuLike = str | GPUSpec
ProfileLike = CalibrationProfile | str | Path | None
R = TypeVar("R")


def resolve_gpus(gpus: GpuLike | Sequence[GpuLike]) -> list[GPUSpec]:
    """``"all"``, one id/alias/spec, or a sequence of them -> GPU specs (unknown names raise)."""
    if isinstance(gpus, (str, GPUSpec)):
        gpus = [gpus]
    out: list[GPUSpec] = []
    for g in gpus:
        if isinstance(g, GPUSpec):
            out.append(g)
        elif g.strip().lower() == "all":
            out.extend(list_gpus())
        else:
            out.append(get_gpu(g))
    return out


def _as_workload(w: Workload | Mapping[str, Any]) -> Workload:
    return w if isinstance(w, Workload) else Workload.model_validate(w)


def estimate_pairs(
    workloads: Sequence[Workload | Mapping[str, Any]],
    gpus: Sequence[GpuLike],
    *,
    profile: ProfileLike = None,
    workers: int | None = 1,
    strict_knobs: bool = True,
) -> EstimateBatch:
    """Estimate ``workloads[i]`` on ``gpus[i]`` for every i (vectorised).

    ``workers``: processes for a large batch (0 or None: one per available CPU; see
    :mod:`energaizer.workers`). Only for a caller that owns its process (a CLI, a script): it forks.
    The result does not depend on it. A what-if clock or power limit outside a row's GPU range raises
    :class:`~energaizer.errors.InvalidInputError`; with ``strict_knobs`` False the row is infeasible
    instead, the error its reason."""
    from energaizer.pipeline import concat_batches, run
    from energaizer.workers import map_chunks

    if len(workloads) != len(gpus):
        raise ValueError("workloads and gpus must have the same length")
    looked_up: dict[str, GPUSpec] = {}
    specs = [
        g if isinstance(g, GPUSpec) else looked_up.get(g) or looked_up.setdefault(g, get_gpu(g)) for g in gpus
    ]
    wl = [_as_workload(w) for w in workloads]
    prof = load_profile(profile)
    return concat_batches(
        map_chunks(len(wl), workers, lambda b: run(wl[b[0] : b[1]], specs[b[0] : b[1]], prof, strict_knobs))
    )


def estimate_csv(
    source: str | Path, *, profile: ProfileLike = None, workers: int | None = 1
) -> EstimateBatch:
    """Every row of a workload CSV (contract section 3), in order: what ``estimate_pairs`` gives for the
    rows of ``read_workload_csv(source)``, with the rows' validation split over the worker processes as
    well as their estimates (``workers`` as in :func:`estimate_pairs`). The first bad row in file order
    raises, as ``read_workload_csv`` does."""
    from energaizer.pipeline import concat_batches

    return concat_batches(map_csv(source, _same, profile=profile, workers=workers))


def map_csv(
    source: str | Path,
    fn: Callable[[EstimateBatch], R],
    *,
    profile: ProfileLike = None,
    workers: int | None = 1,
) -> list[R]:
    """``fn`` of the estimates of each contiguous part of a workload CSV's rows, in file order. Each part
    is validated, estimated and handed to ``fn`` in its own worker process (``workers`` as in
    :func:`estimate_pairs`; ``fn``'s results must pickle), so what a caller makes of the estimates
    (the CLI's JSON text) is made in parallel too. The first bad row in file order raises."""
    from energaizer.io.workload_csv import read_csv_cells
    from energaizer.workers import map_chunks

    cells = read_csv_cells(source)
    prof = load_profile(profile)

    def part(bounds: tuple[int, int]) -> R:
        rows = cells.parse(*bounds)
        return fn(estimate_pairs([r.workload for r in rows], [r.gpu for r in rows], profile=prof))

    return map_chunks(len(cells), workers, part)


def _same(batch: EstimateBatch) -> EstimateBatch:
    return batch


def estimate_matrix(
    workloads: Sequence[Workload | Mapping[str, Any]],
    gpus: GpuLike | Sequence[GpuLike],
    *,
    profile: ProfileLike = None,
) -> EstimateBatch:
    """Every workload on every GPU: row ``w * len(gpus) + g`` of the batch is (workload w, GPU g).

    A what-if clock or power limit that some of the GPU types cannot be set to makes those rows
    infeasible (the range in their reason); outside every type's range it raises."""
    from energaizer.io.layout import check_knobs_on_any

    specs = resolve_gpus(gpus)
    wl = [_as_workload(w) for w in workloads]
    for w in wl:
        check_knobs_on_any(w, specs)
    pairs_w = [w for w in wl for _ in specs]
    pairs_g = [g for _ in wl for g in specs]
    return estimate_pairs(pairs_w, pairs_g, profile=profile, strict_knobs=False)


def estimate(
    workload: Workload | Mapping[str, Any],
    gpus: GpuLike | Sequence[GpuLike] = "all",
    *,
    profile: ProfileLike = None,
) -> list[Estimate]:
    """One workload on one or more GPU types -> one ``Estimate`` per GPU type, in order."""
    return estimate_matrix([workload], gpus, profile=profile).to_estimates()
