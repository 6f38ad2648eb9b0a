"""The batched operating-point solve (kernels shared between rows solved once) gives every row bit
for bit the figures of solving every kernel on its own."""

from __future__ import annotations

import numpy as np

from energaizer.estimator import estimate_pairs
from energaizer.power import model
from energaizer.workload import Workload


def _workloads() -> list[Workload]:
    serve = {"requests": 500, "input_tokens": 512, "output_tokens": 128, "batch_size": 32}
    return [
        Workload(model="llama-3.1-8b", inference=serve),
        Workload(model="llama-3.1-8b", precision="fp8", inference={**serve, "input_tokens": 2048}),
        Workload(model="mixtral-8x7b", precision="fp8", inference=serve, gpu_count=2),
        Workload(
            model="gpt2",
            task="training",
            training={"tokens": 1e7, "sequence_length": 1024, "global_batch_size": 8},
        ),
        Workload(model="resnet-50", inference={"requests": 1000, "batch_size": 32}),
    ]


def test_solving_shared_kernels_once_changes_no_figure(monkeypatch):
    gpus = ["h100-sxm", "a100-sxm4-80gb", "l4"]
    pairs = [(w, g) for w in _workloads() for g in gpus] + [(_capped(), "h100-sxm")]
    pairs = pairs + pairs[::-1]  # every kernel appears in several rows

    def run() -> str:
        return repr(estimate_pairs([w for w, _ in pairs], [g for _, g in pairs]).to_dicts(ops=True))

    shared = run()

    def all_distinct(columns):
        n = columns[0].shape[0]
        return np.arange(n), np.arange(n)

    monkeypatch.setattr(model, "distinct_rows", all_distinct)
    assert run() == shared


def _capped() -> Workload:
    return Workload(
        model="llama-3.1-8b",
        inference={"requests": 500, "input_tokens": 2048, "output_tokens": 16, "batch_size": 64},
        power_limit_w=250.0,
    )


def test_the_capped_row_is_capped():
    capped, free = _capped(), _capped().model_copy(update={"power_limit_w": None})
    out = estimate_pairs([capped, free], ["h100-sxm", "h100-sxm"])
    assert out.frequency_mhz[0] < out.frequency_mhz[1]


def test_an_empty_batch_is_an_empty_result():
    out = estimate_pairs([], [])
    assert len(out) == 0
    assert out.to_dicts() == []
