"""The batched operating-point solve (kernels shared between rows solved once) gives every row bit
for bit the figures of solving every kernel on its own."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from energaizer import pipeline
from energaizer.catalog import get_gpu
from energaizer.estimator import estimate_pairs
from energaizer.power import model
from energaizer.profile import CalibrationProfile
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


def test_a_batch_split_over_worker_processes_gives_the_same_figures(monkeypatch):
    from energaizer import workers

    # chunks whose ops differ (a CNN, a training step, MoE experts) and an infeasible row (a 70B model on
    # one L4) among the feasible ones: the joined batch is the whole one, key for key and bit for bit
    pairs = [(w, g) for w in _workloads() for g in ("h100-sxm", "l4")] + [(_capped(), "h100-sxm")]
    pairs.insert(3, (Workload(model="llama-3.1-70b", inference={"requests": 10}), "l4"))
    wl, gpus = [w for w, _ in pairs], [g for _, g in pairs]
    whole = estimate_pairs(wl, gpus, workers=1)
    assert not whole.feasible[3] and whole.feasible.sum() >= len(pairs) - 2
    monkeypatch.setattr(workers, "MIN_ROWS_PER_WORKER", 1)
    for n in (2, 3, 5):
        split = estimate_pairs(wl, gpus, workers=n)
        assert repr(split.to_dicts(ops=True)) == repr(whole.to_dicts(ops=True))
        assert split.ops.names == whole.ops.names
        assert repr(split.to_estimates()) == repr(whole.to_estimates())  # (repr: NaN equals NaN)


def test_a_csv_split_over_worker_processes_reads_and_fails_as_one_process(tmp_path, monkeypatch):
    from energaizer import workers
    from energaizer.errors import InvalidInputError
    from energaizer.estimator import estimate_csv
    from energaizer.io.workload_csv import read_workload_csv

    monkeypatch.setattr(workers, "MIN_ROWS_PER_WORKER", 1)
    good = ["llama-3.1-8b,h100-sxm,100,512", "gpt2,l4,10,64", "qwen3-30b-a3b,h200,50,1024"] * 3
    path = tmp_path / "w.csv"
    path.write_text("model,gpu,requests,input_tokens\n" + "\n".join(good) + "\n\n")
    rows = read_workload_csv(path)
    whole = estimate_pairs([r.workload for r in rows], [r.gpu for r in rows])
    for n in (1, 2, 4):
        assert repr(estimate_csv(path, workers=n).to_dicts(ops=True)) == repr(whole.to_dicts(ops=True))
    from energaizer.estimator import map_csv

    for n in (1, 2, 4):  # each part's own result, in file order: together, the whole batch's rows
        parts = map_csv(path, lambda batch: batch.to_dicts(), workers=n)
        assert len(parts) == n and repr([row for part in parts for row in part]) == repr(whole.to_dicts())
    bad = [*good[:6], "gpt2,no-such-gpu,1,1", *good[6:8], "no-such-model,l4,1,1"]
    path.write_text("model,gpu,requests,input_tokens\n" + "\n".join(bad) + "\n")
    for n in (1, 3, 5):  # the bad rows in the third and last parts: the first in file order is named
        with pytest.raises(InvalidInputError, match=r"w.csv line 8: unknown gpu 'no-such-gpu'"):
            estimate_csv(path, workers=n)
        with pytest.raises(InvalidInputError, match=r"w.csv line 8: unknown gpu 'no-such-gpu'"):
            map_csv(path, len, workers=n)


def test_a_prepared_batch_solved_under_several_profiles_is_what_run_gives_each():
    """A fit prepares its rows once (the profile-free stages) and solves them under every profile it tries:
    each solve must be exactly the full run under that profile, and solving must leave the prepared rows
    as they were (a later profile would otherwise see an earlier one's figures)."""
    workloads = [*_workloads(), _capped()]
    specs = [get_gpu(g) for g in ("h100-sxm", "a100-sxm4-80gb", "l4", "a10", "v100-sxm2-32gb", "h100-sxm")]
    shipped = CalibrationProfile()
    other = shipped.model_copy(update={"launch_overhead_us": 3 * shipped.launch_overhead_us, "alpha_sm": 0.5})
    prepared = pipeline.prepare(workloads, specs)
    before = copy.deepcopy(prepared)
    for prof in (shipped, other, shipped):
        solved = pipeline.solve(prepared, prof).to_dicts(ops=True)
        assert repr(solved) == repr(pipeline.run(workloads, specs, prof).to_dicts(ops=True))
    assert repr(pipeline.solve(prepared, other).to_dicts()) != repr(
        pipeline.solve(prepared, shipped).to_dicts()
    )
    for name in ("clock_mhz", "power_limit_w", "passes", "decode_steps", "window", "gi"):
        assert np.array_equal(getattr(prepared, name), getattr(before, name)), name
    assert prepared.reason == before.reason and np.array_equal(prepared.mem.feasible, before.mem.feasible)
    assert np.array_equal(prepared.mem.required_gb, before.mem.required_gb)
