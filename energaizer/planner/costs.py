"""Per (job, pool) energy and run time from the estimator, each distinct workload estimated once per
pool type (GPU x clock x power limit) and cached across runs (what-if sweeps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from energaizer.planner.pools import NodePool
from energaizer.planner.trace import Trace
from energaizer.result import EstimateBatch
from energaizer.workload import Workload

EstimatePairsFn = Callable[[Sequence[Workload], Sequence[str]], EstimateBatch]

Knobs = tuple[str, float | None, float | None]  # gpu id, frequency_mhz, power_limit_w


def _default_estimate_pairs(workloads: Sequence[Workload], gpus: Sequence[str]) -> EstimateBatch:
    from energaizer.estimator import estimate_pairs

    return estimate_pairs(workloads, gpus)


@dataclass
class JobCosts:
    """(J, P) arrays for a trace on a list of pools; ``energy``/``duration`` are inf where infeasible."""

    energy: np.ndarray
    duration: np.ndarray
    feasible: np.ndarray
    reason: list[list[str]]  # per distinct workload and pool: why infeasible ("" if feasible)
    pool_ids: list[str]
    unscaled: dict[int, str] = field(default_factory=dict)  # per job whose duration cannot be scaled: why

    def job_reason(self, trace: Trace, j: int, pools: Sequence[NodePool]) -> str:
        if j in self.unscaled:
            return self.unscaled[j]
        parts = []
        for p, pool in enumerate(pools):
            if self.feasible[j, p]:
                continue
            why = self.reason[int(trace.workload[j])][p]
            if not why and trace.gpu_count[j] > pool.gpus:
                why = f"needs {trace.gpu_count[j]} GPUs, the pool has {pool.gpus}"
            if not why and np.isfinite(trace.deadline[j]):
                why = f"misses the {trace.deadline[j]:g} s deadline"
            parts.append(f"{pool.name}: {why or 'infeasible'}")
        return "; ".join(parts)


class CostCache:
    """Estimates keyed by (distinct workload, GPU, clock, power limit), filled in batches."""

    def __init__(self, estimate_pairs: EstimatePairsFn | None = None) -> None:
        self._fn = estimate_pairs or _default_estimate_pairs
        self._store: dict[tuple[str, Knobs], tuple[float, float, bool, str]] = {}
        self.estimated = 0

    @staticmethod
    def _key(w: Workload) -> str:
        return w.model_dump_json()

    def lookup(
        self, workloads: Sequence[Workload], knobs: Sequence[Knobs]
    ) -> list[list[tuple[float, float, bool, str]]]:
        """(W x K) of (energy J, duration s, feasible, reason)."""
        keys = [self._key(w) for w in workloads]
        missing_w: list[Workload] = []
        missing_g: list[str] = []
        missing_k: list[tuple[str, Knobs]] = []
        for w, key in zip(workloads, keys, strict=True):
            for k in knobs:
                if (key, k) in self._store:
                    continue
                gpu, freq, limit = k
                update = {}
                if freq is not None:
                    update["frequency_mhz"] = freq
                if limit is not None:
                    update["power_limit_w"] = limit
                missing_w.append(w.model_copy(update=update) if update else w)
                missing_g.append(gpu)
                missing_k.append((key, k))
                self._store[(key, k)] = (np.nan, np.nan, False, "")  # placeholder, filled below
        if missing_w:
            batch = self._fn(missing_w, missing_g)
            self.estimated += len(missing_w)
            for i, sk in enumerate(missing_k):
                ok = bool(batch.feasible[i]) and np.isfinite(batch.energy_joules[i])
                self._store[sk] = (
                    float(batch.energy_joules[i]),
                    float(batch.duration_seconds[i]),
                    ok,
                    "" if ok else (batch.reason[i] or "infeasible"),
                )
        return [[self._store[(key, k)] for k in knobs] for key in keys]


def pool_knobs(pool: NodePool) -> Knobs:
    return (pool.gpu, pool.frequency_mhz, pool.power_limit_w)


def job_costs(trace: Trace, pools: Sequence[NodePool], cache: CostCache) -> JobCosts:
    """Energy and duration of every job on every pool (inf where it cannot run there)."""
    knobs = [pool_knobs(p) for p in pools]
    table = cache.lookup(trace.workloads, knobs)
    w_energy = np.array([[c[0] for c in row] for row in table], dtype=float).reshape(len(table), len(knobs))
    w_dur = np.array([[c[1] for c in row] for row in table], dtype=float).reshape(len(table), len(knobs))
    w_ok = np.array([[c[2] for c in row] for row in table], dtype=bool).reshape(len(table), len(knobs))
    reasons = [[c[3] for c in row] for row in table]

    energy = w_energy[trace.workload]
    duration = w_dur[trace.workload]
    feasible = w_ok[trace.workload].copy()

    scaled = np.nonzero(np.isfinite(trace.ref_duration))[0]
    unscaled: dict[int, str] = {}
    if scaled.size:
        pairs = sorted({(int(trace.workload[j]), trace.ref_gpu[j]) for j in scaled})
        ref_table = cache.lookup(
            [trace.workloads[w] for w, _ in pairs],
            [(g, None, None) for g in sorted({g for _, g in pairs})],
        )
        gpu_cols = {g: i for i, g in enumerate(sorted({g for _, g in pairs}))}
        ref_dur = {
            pair: (row[gpu_cols[pair[1]]][1] if row[gpu_cols[pair[1]]][2] else np.nan)
            for pair, row in zip(pairs, ref_table, strict=True)
        }
        base = np.array([ref_dur[(int(trace.workload[j]), trace.ref_gpu[j])] for j in scaled])
        factor = trace.ref_duration[scaled] / base
        bad = ~np.isfinite(factor) | (factor <= 0)
        factor[bad] = np.nan
        energy[scaled] *= factor[:, None]
        duration[scaled] *= factor[:, None]
        feasible[scaled[bad]] = False
        unscaled = {
            int(j): f"its template ({trace.model[j]} {trace.kind[j]}) does not run on {trace.gpu_count[j]} x "
            f"{trace.ref_gpu[j]}, the GPU its duration was measured on, so the duration cannot be scaled"
            for j in scaled[bad]
        }

    gpus = np.array([p.gpus for p in pools], dtype=float)
    feasible &= trace.gpu_count[:, None] <= gpus[None, :]
    with np.errstate(invalid="ignore"):
        feasible &= ~(duration > trace.deadline[:, None])  # NaN deadline: no constraint
    feasible &= np.isfinite(energy) & np.isfinite(duration)
    energy = np.where(feasible, energy, np.inf)
    duration = np.where(feasible, duration, np.inf)
    return JobCosts(energy, duration, feasible, reasons, [p.name for p in pools], unscaled)
