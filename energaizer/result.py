"""Estimate results: one pydantic object per (workload, GPU) pair, and a columnar batch of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

BREAKDOWN_KEYS: tuple[str, ...] = ("static", "compute", "memory", "communication", "overhead")


class OpEstimate(BaseModel):
    """Energy and time of one operation's kernels (e.g. every ``mlp_up`` GEMM) over the whole workload."""

    energy_joules: float | None = Field(description="all GPUs; null when the workload is infeasible")
    duration_seconds: float | None = Field(description="GPU time; null when the workload is infeasible")


@dataclass
class OpFigures:
    """Per-operation columns of a batch: ``energy_joules[i, j]`` is op ``names[j]`` of row ``i``."""

    names: tuple[str, ...] = ()
    energy_joules: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    duration_seconds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


class Estimate(BaseModel):
    """Predicted time, power and energy of a whole workload on all the GPUs it uses (board energy)."""

    gpu: str = Field(description="catalog id")
    energy_joules: float
    duration_seconds: float
    average_power_watts: float = Field(description="summed over all gpu_count GPUs")
    energy_per_output_token_joules: float | None = Field(description="inference with output; else null")
    breakdown: dict[str, float] = Field(description="joules by component: " + ", ".join(BREAKDOWN_KEYS))
    feasible: bool
    reason: str = ""
    # Extensions (documented in README): the operating point and sizes behind the figures.
    gpu_count: int = 1
    frequency_mhz: float = Field(description="effective SM clock (after any power-cap throttling)")
    power_limit_w: float = Field(description="power limit per GPU used")
    memory_required_gb: float = Field(description="per GPU: weights + KV cache or training state")
    kernel_launches: float = Field(description="kernel launches over the whole workload")
    time_breakdown: dict[str, float] = Field(default_factory=dict, description="seconds by phase")
    ops: dict[str, OpEstimate] = Field(
        default_factory=dict,
        description="kernel energy (all GPUs) and GPU time per operation (qkv_proj, mlp_up, attention, ...); "
        "host waits (breakdown.overhead) belong to no op",
    )
    layout: dict[str, float | int | bool] = Field(
        default_factory=dict,
        description="the parallel layout estimated: tensor_parallel, data_parallel (training replicas or "
        "inference attention engines), expert_parallel; training: micro_batch_sequences, "
        "gradient_accumulation_steps, activation_recomputation",
    )


LAYOUT_INT_KEYS = ("tensor_parallel", "data_parallel", "expert_parallel", "gradient_accumulation_steps")


def _layout_value(key: str, value: float) -> float | int | bool:
    if key == "activation_recomputation":
        return bool(value)
    return int(value) if key in LAYOUT_INT_KEYS else float(value)


@dataclass
class EstimateBatch:
    """Columnar results for N (workload, GPU) pairs; every array has shape (N,)."""

    gpu: list[str]
    energy_joules: np.ndarray
    duration_seconds: np.ndarray
    average_power_watts: np.ndarray
    energy_per_output_token_joules: np.ndarray  # NaN where not applicable
    breakdown: dict[str, np.ndarray]
    feasible: np.ndarray
    reason: list[str]
    gpu_count: np.ndarray
    frequency_mhz: np.ndarray
    power_limit_w: np.ndarray
    memory_required_gb: np.ndarray
    kernel_launches: np.ndarray
    time_breakdown: dict[str, np.ndarray] = field(default_factory=dict)
    ops: OpFigures = field(default_factory=OpFigures)
    layout: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.gpu)

    def row(self, i: int) -> Estimate:
        epot = float(self.energy_per_output_token_joules[i])
        return Estimate(
            gpu=self.gpu[i],
            energy_joules=float(self.energy_joules[i]),
            duration_seconds=float(self.duration_seconds[i]),
            average_power_watts=float(self.average_power_watts[i]),
            energy_per_output_token_joules=None if np.isnan(epot) else epot,
            breakdown={k: float(v[i]) for k, v in self.breakdown.items()},
            feasible=bool(self.feasible[i]),
            reason=self.reason[i],
            gpu_count=int(self.gpu_count[i]),
            frequency_mhz=float(self.frequency_mhz[i]),
            power_limit_w=float(self.power_limit_w[i]),
            memory_required_gb=float(self.memory_required_gb[i]),
            kernel_launches=float(self.kernel_launches[i]),
            time_breakdown={k: float(v[i]) for k, v in self.time_breakdown.items()},
            ops={
                name: OpEstimate(
                    energy_joules=_finite(self.ops.energy_joules[i, j]),
                    duration_seconds=_finite(self.ops.duration_seconds[i, j]),
                )
                for j, name in enumerate(self.ops.names)
            },
            layout={k: _layout_value(k, v[i]) for k, v in self.layout.items() if v[i] == v[i]},
        )

    def to_estimates(self) -> list[Estimate]:
        return [self.row(i) for i in range(len(self))]

    def to_dicts(self, ops: bool = False) -> list[dict]:
        """The same content as ``[e.model_dump(exclude=...) for e in to_estimates()]``, built from the
        columns directly (fast path for large JSON outputs); NaN becomes None. ``ops`` adds the
        per-operation figures (key ``ops``)."""

        def col(a: np.ndarray) -> list:
            return [None if x != x else x for x in a.tolist()]

        names = (
            "energy_joules",
            "duration_seconds",
            "average_power_watts",
            "energy_per_output_token_joules",
            "frequency_mhz",
            "power_limit_w",
            "memory_required_gb",
            "kernel_launches",
        )
        n = len(self)

        def rows_of(columns: dict[str, list]) -> list[dict]:
            keys = tuple(columns)
            if not keys:
                return [{} for _ in range(n)]
            return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]

        cols = {k: col(getattr(self, k)) for k in names}
        columns: dict[str, list] = {"gpu": self.gpu}
        columns.update((k, cols[k]) for k in names[:4])
        columns["breakdown"] = rows_of({k: col(v) for k, v in self.breakdown.items()})
        columns["feasible"] = [bool(x) for x in self.feasible.tolist()]
        columns["reason"] = self.reason
        columns["gpu_count"] = [int(x) for x in self.gpu_count.tolist()]
        columns.update((k, cols[k]) for k in names[4:])
        columns["time_breakdown"] = rows_of({k: col(v) for k, v in self.time_breakdown.items()})
        if ops:
            columns["ops"] = rows_of(
                {
                    name: rows_of(
                        {
                            "energy_joules": col(self.ops.energy_joules[:, j]),
                            "duration_seconds": col(self.ops.duration_seconds[:, j]),
                        }
                    )
                    for j, name in enumerate(self.ops.names)
                }
            )
        columns["layout"] = self._layout_dicts()
        return rows_of(columns)

    def _layout_dicts(self) -> list[dict[str, float | int | bool]]:
        """Each row's layout as ``row(i).layout`` holds it (a NaN key left out), built per set of keys
        present (inference rows lack the training keys) rather than key by key for every row."""
        n, keys = len(self), list(self.layout)
        out: list[dict] = [{} for _ in range(n)]
        if not keys or not n:
            return out
        present = np.zeros(n, dtype=np.int64)
        values = {}
        for j, k in enumerate(keys):
            v = self.layout[k]
            ok = v == v
            present |= ok.astype(np.int64) << j
            if k == "activation_recomputation":
                values[k] = np.array((v != 0).tolist(), dtype=object)
            elif k in LAYOUT_INT_KEYS:
                values[k] = np.array(np.where(ok, v, 0).astype(np.int64).tolist(), dtype=object)
            else:
                values[k] = np.array(v.tolist(), dtype=object)
        for mask in np.unique(present).tolist():
            ks = [k for j, k in enumerate(keys) if mask >> j & 1]
            if not ks:
                continue  # every key NaN: the row's layout stays empty
            idx = np.flatnonzero(present == mask)
            cols = [values[k][idx].tolist() for k in ks]
            for i, vals in zip(idx.tolist(), zip(*cols, strict=True), strict=True):
                out[i] = dict(zip(ks, vals, strict=True))
        return out


def _finite(x: float) -> float | None:
    x = float(x)
    return None if x != x else x
