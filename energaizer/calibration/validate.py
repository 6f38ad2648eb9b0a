"""Predicted vs measured: MAPE of energy, time and power; worst cases; GPU-ranking agreement.

Ranking agreement: among measured rows of one campaign (the source, less a per-GPU suffix such as
``-a10``) that describe the same workload on different GPU types,
the share of GPU pairs whose energy order the prediction gets right (pairwise concordance; 1.0 =
identical rankings), and how often the predicted best GPU is the measured best.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from energaizer.io.workload_csv import CsvRow
from energaizer.result import EstimateBatch


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
    worst: list[dict] = field(default_factory=list)

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
            },
            "worst": self.worst,
        }


def ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
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
    """The measurement campaign of a row: its source, less a trailing per-GPU part (``artifact-a10``)."""
    head, _, tail = source.rpartition("-")
    return head if head and tail and gpu.startswith(tail) else source


def _workload_key(r: CsvRow) -> str:
    w = r.workload.model_dump(exclude={"gpu_count", "tensor_parallel", "frequency_mhz", "power_limit_w"})
    return f"{_campaign(r.extra.get('source', ''), r.gpu)}|{w}|{r.workload.gpu_count}"


def validate(rows: list[CsvRow], pred: EstimateBatch, worst_n: int = 10) -> ValidationReport:
    e, t, p = measured_arrays(rows)
    errs = (ape(pred.energy_joules, e), ape(pred.duration_seconds, t), ape(pred.average_power_watts, p))
    all_idx = np.arange(len(rows))
    groups_src: dict[str, list[int]] = defaultdict(list)
    groups_gpu: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups_src[r.extra.get("source") or "(none)"].append(i)
        groups_gpu[r.gpu].append(i)
    # Ranking: same workload measured on >= 2 GPU types.
    same: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(rows):
        if np.isfinite(e[i]) and np.isfinite(pred.energy_joules[i]):
            same[_workload_key(r)][pred.gpu[i]].append(i)
    pairs = agree = best_n = best_ok = 0
    for by_gpu in same.values():
        if len(by_gpu) < 2:
            continue
        gm = {g: float(np.mean(e[ix])) for g, ix in by_gpu.items()}
        gp = {g: float(np.mean(pred.energy_joules[ix])) for g, ix in by_gpu.items()}
        for a, b in combinations(sorted(gm), 2):
            pairs += 1
            agree += (gm[a] < gm[b]) == (gp[a] < gp[b])
        best_n += 1
        best_ok += min(gm, key=gm.get) == min(gp, key=gp.get)
    order = np.argsort(-np.nan_to_num(errs[0], nan=-1.0))[:worst_n]
    worst = [
        {
            "line": rows[i].line,
            "source": rows[i].extra.get("source", ""),
            "model": rows[i].workload.model_name,
            "gpu": rows[i].gpu,
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
        worst=worst,
    )
