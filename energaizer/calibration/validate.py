"""Predicted vs measured: MAPE of energy, time and power; worst cases; GPU-ranking agreement.

Ranking agreement: among measured rows of one campaign (the source, less a per-GPU suffix such as
``-a10``) that describe the same workload on different GPU types (:func:`workload_key`), the share of GPU
pairs whose order of energy per unit of work (:func:`work_units`) the prediction gets right (pairwise
concordance; 1.0 = identical rankings), the same over the decisive pairs (measured energies more than
:data:`DECISIVE_MARGIN` apart), and how often the predicted best GPU is the measured best.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from energaizer.io.workload_csv import CsvRow
from energaizer.result import EstimateBatch

# A GPU pair is decisive when its measured energies per unit of work differ by more than this share. Closer pairs
# are near ties: placing the workload on the other GPU costs less than this share, and runs of architecturally
# identical models differ by more (ML.ENERGY v1's LLaMA-7B fine-tunes on one prompt set: A100 / V100 energy
# ratios 0.86-1.06), so the measured order of a near tie is largely the measurement's.
DECISIVE_MARGIN = 0.05


@dataclass
class GroupScore:
    rows: int
    energy_mape: float
    time_mape: float
    power_mape: float


@dataclass
class ValidationReport:
    overall: GroupScore
    by_source: dict[str, GroupScore]
    by_gpu: dict[str, GroupScore]
    ranking_pairs: int
    ranking_concordance: float
    best_gpu_agreement: float
    decisive_pairs: int = 0  # pairs whose measured energies differ by more than DECISIVE_MARGIN
    decisive_concordance: float = float("nan")
    worst: list[dict] = field(default_factory=list)
    reversed_pairs: list[dict] = field(default_factory=list)  # the GPU pairs the prediction orders wrongly

    def to_dict(self) -> dict:
        def g(s: GroupScore) -> dict:
            return {
                "rows": s.rows,
                "energy_mape_pct": s.energy_mape,
                "time_mape_pct": s.time_mape,
                "power_mape_pct": s.power_mape,
            }

        return {
            "overall": g(self.overall),
            "by_source": {k: g(v) for k, v in self.by_source.items()},
            "by_gpu": {k: g(v) for k, v in self.by_gpu.items()},
            "ranking": {
                "comparable_pairs": self.ranking_pairs,
                "pairwise_concordance": self.ranking_concordance,
                "best_gpu_agreement": self.best_gpu_agreement,
                "decisive_margin": DECISIVE_MARGIN,
                "decisive_pairs": self.decisive_pairs,
                "decisive_concordance": self.decisive_concordance,
                "reversed_pairs": self.reversed_pairs,
            },
            "worst": self.worst,
        }


def ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):  # a measured 1e-320 J overflows: inf, left out of the means
        return np.abs(pred - meas) / np.abs(meas) * 100.0


def _mape(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if x.size else float("nan")


def measured_arrays(rows: list[CsvRow]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def col(key: str) -> np.ndarray:
        return np.array([r.measured.get(key, np.nan) for r in rows], dtype=np.float64)

    e, t, p = (
        col("measured_energy_joules"),
        col("measured_duration_seconds"),
        col("measured_average_power_watts"),
    )
    p = np.where(np.isnan(p), e / t, p)
    return e, t, p


def _score(idx: np.ndarray, errs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> GroupScore:
    return GroupScore(int(idx.size), *(_mape(x[idx]) for x in errs))


def _campaign(source: str, gpu: str) -> str:
    """The measurement campaign of a row: its source, less a trailing part that names its GPU
    (``artifact-a10`` on an a10, ``artifact-a100`` on an a100-pcie-40gb; ``mlenergy-v1`` stays itself on a
    v100-sxm2-32gb)."""
    head, _, tail = source.rpartition("-")
    return head if head and tail and tail == gpu.split("-")[0] else source


def workload_key(r: CsvRow) -> str:
    """The workload a measured row ran, the same for every GPU type of its campaign that ran it: the
    source's own configuration (the ``config`` column, e.g. an ML.ENERGY task, model and max_num_seqs, whose
    measured output lengths and concurrency differ a little from run to run) where the row has one, else
    its workload columns less the parallel layout, clock and power limit; and its GPU count."""
    config = r.extra.get("config") or r.workload.model_dump(
        exclude={"gpu_count", "tensor_parallel", "frequency_mhz", "power_limit_w"}
    )
    return f"{_campaign(r.extra.get('source', ''), r.gpu)}|{config}|{r.workload.gpu_count}"


def work_units(r: CsvRow) -> float:
    """What a row's energy is compared per across GPU types: the tokens a serving row generates (two runs
    of one configuration generate a little more or less), else the whole row."""
    inf = r.workload.inference
    return float(inf.requests * inf.output_tokens) if inf is not None and inf.output_tokens else 1.0


@dataclass
class GpuPair:
    """One workload measured on two GPU types: energy per unit of work, first GPU / second GPU."""

    key: str
    gpus: tuple[str, str]
    rows: tuple[list[int], list[int]]
    measured_ratio: float
    predicted_ratio: float

    @property
    def concordant(self) -> bool:
        return (self.measured_ratio < 1.0) == (self.predicted_ratio < 1.0)

    @property
    def decisive(self) -> bool:
        """The measured energies differ by more than :data:`DECISIVE_MARGIN`."""
        with np.errstate(all="ignore"):  # a ratio of 0 or inf (absurd measurements) is decisive
            return bool(abs(np.log(self.measured_ratio)) > np.log1p(DECISIVE_MARGIN))


def _by_workload(
    rows: list[CsvRow], measured_j: np.ndarray, predicted_j: np.ndarray, gpus: Sequence[str] | None = None
) -> dict[str, dict[str, tuple[list[int], float, float]]]:
    """workload -> GPU -> (its rows, mean measured and mean predicted energy per unit of work), for the
    workloads measured on two or more GPU types (rows without both energies are left out). ``gpus``: each
    row's catalog GPU id (default: the rows' own spelling)."""
    units = np.array([work_units(r) for r in rows])
    me, pe = measured_j / units, predicted_j / units
    gpu_of = [r.gpu for r in rows] if gpus is None else gpus
    same: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(rows):
        if np.isfinite(me[i]) and np.isfinite(pe[i]):
            same[workload_key(r)][gpu_of[i]].append(i)
    return {
        key: {g: (ix, float(np.mean(me[ix])), float(np.mean(pe[ix]))) for g, ix in by_gpu.items()}
        for key, by_gpu in same.items()
        if len(by_gpu) >= 2
    }


def gpu_pairs(
    rows: list[CsvRow], measured_j: np.ndarray, predicted_j: np.ndarray, gpus: Sequence[str] | None = None
) -> list[GpuPair]:
    """Every pair of GPU types that ran one workload (:func:`workload_key`), with the measured and predicted
    ratio of their mean energy per unit of work."""
    return _pairs(_by_workload(rows, measured_j, predicted_j, gpus))


def _pairs(workloads: dict[str, dict[str, tuple[list[int], float, float]]]) -> list[GpuPair]:
    out = []
    for key, by_gpu in workloads.items():
        for a, b in combinations(sorted(by_gpu), 2):
            (ia, ma, pa), (ib, mb, pb) = by_gpu[a], by_gpu[b]
            out.append(GpuPair(key, (a, b), (ia, ib), ma / mb, pa / pb))
    return out


def validate(rows: list[CsvRow], pred: EstimateBatch, worst_n: int = 10) -> ValidationReport:
    e, t, p = measured_arrays(rows)
    errs = (ape(pred.energy_joules, e), ape(pred.duration_seconds, t), ape(pred.average_power_watts, p))
    all_idx = np.arange(len(rows))
    groups_src: dict[str, list[int]] = defaultdict(list)
    groups_gpu: dict[str, list[int]] = defaultdict(list)
    gpu_ids = list(pred.gpu)  # each row's catalog id: an alias (a100, H100) groups with its id
    for i, r in enumerate(rows):
        groups_src[r.extra.get("source") or "(none)"].append(i)
        groups_gpu[gpu_ids[i]].append(i)
    # Ranking: same workload measured on >= 2 GPU types, energy per unit of work.
    workloads = _by_workload(rows, e, np.asarray(pred.energy_joules, dtype=np.float64), pred.gpu)
    ranked = _pairs(workloads)
    pairs, agree = len(ranked), sum(x.concordant for x in ranked)
    decisive = [x for x in ranked if x.decisive]
    best_n = len(workloads)
    best_ok = sum(
        min(by_gpu, key=lambda g: by_gpu[g][1]) == min(by_gpu, key=lambda g: by_gpu[g][2])
        for by_gpu in workloads.values()
    )
    order = np.argsort(-np.nan_to_num(errs[0], nan=-1.0))[:worst_n]
    worst = [
        {
            "line": rows[i].line,
            "source": rows[i].extra.get("source", ""),
            "model": rows[i].workload.model_name,
            "gpu": gpu_ids[i],
            "energy_error_pct": float(errs[0][i]),
            "time_error_pct": float(errs[1][i]),
            "power_error_pct": float(errs[2][i]),
            "measured_energy_joules": float(e[i]),
            "predicted_energy_joules": float(pred.energy_joules[i]),
        }
        for i in order
    ]
    return ValidationReport(
        overall=_score(all_idx, errs),
        by_source={k: _score(np.array(v), errs) for k, v in sorted(groups_src.items())},
        by_gpu={k: _score(np.array(v), errs) for k, v in sorted(groups_gpu.items())},
        ranking_pairs=pairs,
        ranking_concordance=agree / pairs if pairs else float("nan"),
        best_gpu_agreement=best_ok / best_n if best_n else float("nan"),
        decisive_pairs=len(decisive),
        decisive_concordance=sum(x.concordant for x in decisive) / len(decisive)
        if decisive
        else float("nan"),
        worst=worst,
        reversed_pairs=[pair_record(rows, x) for x in ranked if not x.concordant],
    )


def pair_record(rows: list[CsvRow], pair: GpuPair) -> dict:
    """One GPU pair for a report: the workload (its source, config or model), the GPUs, the CSV lines of
    their rows, the energy-per-unit ratios (first GPU / second GPU) and whether the pair is decisive."""
    r = rows[pair.rows[0][0]]
    return {
        "source": r.extra.get("source", ""),
        "workload": r.extra.get("config") or r.workload.model_name,
        "gpus": list(pair.gpus),
        "lines": [[rows[i].line for i in ix] for ix in pair.rows],
        "measured_ratio": pair.measured_ratio,
        "predicted_ratio": pair.predicted_ratio,
        "decisive": bool(pair.decisive),
    }
