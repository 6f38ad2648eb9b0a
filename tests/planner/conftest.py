"""Shared fixtures for the planner tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from energaizer.planner.policies import Context

REPO = Path(__file__).resolve().parents[2]
SHARED_TRACES = REPO.parent / "shared" / "traces"


def make_context(energy, duration, demand, submit, total) -> Context:
    energy = np.asarray(energy, dtype=float)
    duration = np.asarray(duration, dtype=float)
    feasible = np.isfinite(energy)
    return Context(
        demand=np.asarray(demand, dtype=float),
        submit=np.asarray(submit, dtype=float),
        energy=energy,
        duration=np.where(feasible, duration, np.inf),
        feasible=feasible,
        total=np.asarray(total, dtype=float),
        pool_ids=[f"p{i}" for i in range(energy.shape[1])],
    )


def peak_usage(
    pool: np.ndarray, start: np.ndarray, end: np.ndarray, demand: np.ndarray, n_pools: int
) -> np.ndarray:
    """Highest number of GPUs in use at once, per pool."""
    peak = np.zeros(n_pools)
    for p in range(n_pools):
        on = np.nonzero(pool == p)[0]
        events = sorted(
            [(start[j], demand[j]) for j in on] + [(end[j], -demand[j]) for j in on],
            key=lambda e: (e[0], e[1]),
        )
        level = 0.0
        for _, d in events:
            level += d
            peak[p] = max(peak[p], level)
    return peak


@pytest.fixture
def pools_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "pools.yaml"
    path.write_text(
        "- {gpu: h100-sxm, nodes: 1, gpus_per_node: 8}\n"
        "- {gpu: a100-sxm4-80gb, nodes: 1, gpus_per_node: 8}\n"
        "- {gpu: l4, nodes: 2, gpus_per_node: 4, name: l4-small}\n"
    )
    return path


@pytest.fixture
def trace_csv(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    rows = [
        "job_id,submit_time_s,model,gpu_count,task,requests,input_tokens,output_tokens,batch_size,tokens,duration_s,deadline_s"
    ]
    for i in range(30):
        t = i * 120
        if i % 3 == 0:
            rows.append(f"inf-{i},{t},llama-3.1-8b,1,inference,{2000 + 100 * i},1000,128,32,,,")
        elif i % 3 == 1:
            rows.append(f"trn-{i},{t},,{1 + (i % 2)},,,,,,,{600 + 60 * i},")
        else:
            rows.append(f"big-{i},{t},llama-3.1-70b,4,inference,3000,800,200,16,,,")
    path.write_text("\n".join(rows) + "\n")
    return path
