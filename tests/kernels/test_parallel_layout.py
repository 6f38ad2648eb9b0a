"""Parallel layout of an inference replica (vLLM meanings): expert parallelism places whole experts on
the GPUs (an all-to-all per MoE layer across data-parallel attention engines, the tensor-parallel all-
reduce within one), data-parallel attention engines split the sequences."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from energaizer import Workload, estimate
from energaizer.io.workload_csv import read_workload_csv
from energaizer.kernels.transformer import busiest_rank_experts, expected_max_normal

SERVE = {"requests": 1024, "input_tokens": 256, "output_tokens": 512, "batch_size": 128}


def one(serve=SERVE, **kw):
    (e,) = estimate(Workload(model="qwen3-235b-a22b", gpu_count=8, inference=serve, **kw), "h100-sxm")
    return e


def test_layout_is_validated():
    with pytest.raises(ValidationError, match="expert_parallel spans all GPUs"):
        Workload(model="qwen3-235b-a22b", gpu_count=8, expert_parallel=4, inference=SERVE)
    with pytest.raises(ValidationError, match="multiple of data_parallel"):
        Workload(model="qwen3-235b-a22b", gpu_count=8, data_parallel=3, inference=SERVE)
    with pytest.raises(ValidationError, match="inference replica"):
        Workload(model="gpt2", task="training", gpu_count=8, expert_parallel=8, training={"steps": 1})


def test_expert_parallelism_waits_for_the_busiest_rank_and_dispatches_only_across_engines():
    # 32 sequences: few tokens per rank, so the busiest rank's excess sets the pace (at 128 the whole-
    # expert GEMMs' better efficiency and the imbalance cancel to within 0.1 %)
    serve = {**SERVE, "requests": 256, "batch_size": 32}
    tp, ep = one(serve), one(serve, expert_parallel=8)
    assert tp.feasible and ep.feasible
    # one engine: every rank holds every token, and the MoE output is all-reduced as in tensor
    # parallelism (vLLM runs no all-to-all below two data-parallel ranks)
    assert ep.time_breakdown["communication"] == pytest.approx(tp.time_breakdown["communication"])
    assert "ep_all_to_all" not in ep.ops
    # the layer waits for the busiest rank: slower, and the waiting ranks draw less power
    assert ep.duration_seconds > tp.duration_seconds
    assert ep.average_power_watts < tp.average_power_watts
    # data-parallel attention engines: the tokens are dispatched to their experts' ranks and back
    dp = one(serve, expert_parallel=8, data_parallel=8, precision="fp8")
    assert dp.ops["ep_all_to_all"].energy_joules > 0


def test_expected_maximum_of_normals_matches_the_order_statistics_tables():
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(2) == pytest.approx(1 / np.pi**0.5, abs=1e-4)
    assert expected_max_normal(4) == pytest.approx(1.0294, abs=1e-3)
    assert expected_max_normal(8) == pytest.approx(1.4236, abs=1e-3)


def test_busiest_rank_holds_the_binomial_maximum_of_the_touched_experts():
    """Qwen3-235B (128 experts, 8 per token) at 8 sequences on 8 GPUs: each expert is hit with
    p = 1 - (120/128)^8, a rank's 16 experts give 16p +- sqrt(16 p (1 - p)), the busiest of 8 about
    1.4236 sd above the mean; one rank holds every touched expert; many tokens hit all 16."""
    p = 1 - (120 / 128) ** 8
    touched = 128 * p
    mean, sd = 16 * p, (16 * p * (1 - p)) ** 0.5
    assert busiest_rank_experts(128, touched, 8) == pytest.approx(mean + 1.4236 * sd, rel=1e-3)
    assert busiest_rank_experts(128, touched, 1) == pytest.approx(touched)
    assert busiest_rank_experts(128, 128.0, 8) == pytest.approx(16.0)
    assert busiest_rank_experts(128, 127.9, 8) <= 16.0


def test_data_parallel_engines_replicate_attention_and_hold_their_own_sequences():
    tp, dp = one(expert_parallel=8, precision="fp8"), one(expert_parallel=8, data_parallel=8, precision="fp8")
    # attention weights are replicated on every engine: more memory per GPU
    assert dp.memory_required_gb > tp.memory_required_gb
    assert dp.feasible
    # in bf16 the replicated attention no longer fits beside an eighth of the experts
    assert not one(expert_parallel=8, data_parallel=8).feasible


def test_csv_reads_the_leaderboard_columns(tmp_path):
    f = tmp_path / "w.csv"
    f.write_text(
        "model,gpu,gpu_count,requests,input_tokens,output_tokens,batch_size,tensor_parallel,expert_parallel,"
        "data_parallel\nqwen3-235b-a22b,h100-sxm,8,64,256,256,16,1,8,1\n"
    )
    (row,) = read_workload_csv(f)
    assert (row.workload.expert_parallel, row.workload.data_parallel) == (8, 1)
    (e,) = estimate(row.workload, row.gpu)
    assert e.feasible
