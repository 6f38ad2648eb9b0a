"""Pools YAML, trace CSV and what-if flag parsing: good input parses, bad input names the field."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from energaizer.errors import InvalidInputError
from energaizer.planner.costs import CostCache, job_costs
from energaizer.planner.pools import NodePool, merge_added, parse_add_pool, parse_power_limits, read_pools
from energaizer.planner.trace import TraceBuilder, read_trace


def test_pools_yaml(pools_yaml: Path) -> None:
    pools = read_pools(pools_yaml)
    assert [p.name for p in pools] == ["h100-sxm", "a100-sxm4-80gb", "l4-small"]
    assert [p.gpus for p in pools] == [8, 8, 8]


def test_pools_mapping_form_and_knobs(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("pools:\n  - {gpu: H100, nodes: 2, gpus_per_node: 8, power_limit_w: 500}\n")
    (pool,) = read_pools(path)
    assert pool.gpu == "h100-sxm" and pool.name == "h100-sxm@500W" and pool.gpus == 16


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("- {gpu: nosuchgpu, nodes: 1, gpus_per_node: 8}\n", "gpu"),
        ("- {gpu: l4, nodes: 0, gpus_per_node: 8}\n", "nodes"),
        ("- {gpu: l4, nodes: 1, gpus_per_node: 8, colour: red}\n", "colour"),
        ("- {gpu: l4, nodes: 1}\n", "gpus_per_node"),
        ("- {gpu: l4, nodes: 1, gpus_per_node: 2}\n- {gpu: l4, nodes: 1, gpus_per_node: 2}\n", "duplicate"),
        ("[unclosed\n", "malformed YAML"),
        ("42\n", "expected a list"),
    ],
)
def test_bad_pools_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=field):
        read_pools(path)


def test_add_pool_and_power_limits() -> None:
    pool = parse_add_pool("h100-sxm:8x8")
    assert (pool.gpu, pool.nodes, pool.gpus_per_node) == ("h100-sxm", 8, 8)
    pools = merge_added([parse_add_pool("l4:1x4")], [parse_add_pool("l4:2x8")])
    assert [p.name for p in pools] == ["l4", "l4-2"]
    limits = parse_power_limits(["l4=60,70", "l4-2=50"], pools)
    assert limits == {"l4": [60.0, 70.0], "l4-2": [50.0]}
    assert parse_power_limits(["l4=65"], pools)["l4"] == [65.0]
    for bad, field in [("h100-sxm:8", "--add-pool"), ("nosuch:1x1", "--add-pool")]:
        with pytest.raises(InvalidInputError, match=field):
            parse_add_pool(bad)
    for bad in ["l4", "zzz=100", "l4=abc", "l4=-5"]:
        with pytest.raises(InvalidInputError, match="--power-limit-w"):
            parse_power_limits([bad], pools)


def test_trace_both_forms(trace_csv: Path) -> None:
    trace = read_trace(trace_csv, seed=3)
    assert len(trace) == 30
    assert np.all(np.diff(trace.submit) >= 0)
    workload_rows = [j for j, k in enumerate(trace.job_ids) if not k.startswith("trn")]
    duration_rows = [j for j, k in enumerate(trace.job_ids) if k.startswith("trn")]
    assert all(math.isnan(trace.ref_duration[j]) for j in workload_rows)
    assert all(trace.kind[j] == "training" and trace.ref_duration[j] > 0 for j in duration_rows)
    assert trace.model[trace.job_ids.index("big-2")] == "llama-3.1-70b"
    assert trace.gpu_count[trace.job_ids.index("big-2")] == 4
    assert any("template model" in a for a in trace.assumptions)
    # same workload rows share one estimate
    assert len(trace.workloads) < len(trace)
    # templates are drawn with the seed
    again = read_trace(trace_csv, seed=3)
    assert again.model == trace.model


@pytest.mark.parametrize(
    ("header", "row", "field"),
    [
        ("model,gpu_count", "llama-3.1-8b,1", "submit_time_s"),
        ("submit_time_s,model", "abc,llama-3.1-8b", "submit_time_s"),
        ("submit_time_s,model", "-5,llama-3.1-8b", "submit_time_s"),
        ("submit_time_s,model", "0,no-such-model", "model"),
        ("submit_time_s,model,requests", "0,llama-3.1-8b,-3", "requests"),
        ("submit_time_s,gpu_count", "0,2", "duration_s"),
        ("submit_time_s,gpu_count,duration_s", "0,1.5,10", "gpu_count"),
        ("submit_time_s,gpu_count,duration_s", "0,1,0", "duration_s"),
        ("submit_time_s,gpu_count,duration_s,deadline_s", "0,1,10,0", "deadline_s"),
        (
            "submit_time_s,gpu_count,duration_s,reference_gpu",
            "0,1,10,zz",
            r"reference_gpu: .*t\.csv line 2: unknown GPU 'zz'",
        ),
        # a column in other letter case was carried through unread: the job's work went missing
        ("submit_time_s,gpu_count,Duration_s", "0,1,10", r"Duration_s: .*line 1: column names are lowercase"),
        # the work twice: the workload was estimated and duration_s ignored silently
        ("submit_time_s,model,requests,duration_s", "0,gpt2,10,5", r"duration_s: .*line 2: .* not both"),
        # two cells for one field: DictReader kept the last (4 GPUs) and dropped the first silently
        (
            "submit_time_s,gpu_count,duration_s,gpu_count",
            "0,1,10,4",
            r"gpu_count: .*t\.csv line 1: the header names this column twice \(columns 2 and 4\)",
        ),
    ],
)
def test_bad_trace_rows_name_the_field(tmp_path: Path, header: str, row: str, field: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(InvalidInputError, match=field):
        read_trace(path)


def test_spaces_around_column_names_are_not_part_of_them(tmp_path: Path) -> None:
    """``submit_time_s, gpu_count, duration_s`` (a space after each comma): ' gpu_count' was a column of its
    own, carried through unread, and every job took 1 GPU."""
    path = tmp_path / "t.csv"
    path.write_text("submit_time_s, gpu_count, duration_s ,job_id\n0, 4, 10,a\n")
    trace = read_trace(path)
    assert trace.gpu_count[0] == 4 and trace.ref_duration[0] == 10


def test_bad_trace_rows_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("submit_time_s,gpu_count,duration_s\n0,1,10\n5,2,nan\n")
    with pytest.raises(InvalidInputError, match=r"t\.csv line 3: 'nan'"):
        read_trace(path)
    path.write_text('submit_time_s,gpu_count,duration_s,job_id\n0,1,10,"a\nb"\n\n5,2,nan,c\n')
    with pytest.raises(
        InvalidInputError, match=r"t\.csv line 5: 'nan'"
    ):  # a cell over two lines, a blank one
        read_trace(path)


CLUSTER_HEADER = "job_id,submit_time_s,start_time_s,end_time_s,wait_s,duration_s,gpu_count,gpu_type,job_kind,model_hint,censored_at_trace_end"


def test_a_published_cluster_trace_keeps_its_gpu_jobs_with_an_observed_duration(tmp_path: Path) -> None:
    """The unified columns of ../shared/traces (one row per pod, CPU-only and unfinished ones included):
    the GPU pods that ran a known time are jobs, the rest are counted, not errors."""
    rows = [
        "gpu-1,0,0,100,0,100,1,T4,,,0",  # ran 100 s on a T4: its reference GPU
        "cpu-1,5,5,50,0,45,0,,,,0",  # CPU-only pod
        "cpu-2,5,5,50,0,45,0.0,,,,0",  # CPU-only, its count written as a float
        "open-1,6,6,,,,1,,,,0",  # never ended in the trace
        "cut-1,7,7,900,0,893,2,,,,1",  # still running at the trace's end
        "zero-1,8,8,8,0,0,1,,,,0",  # deleted in the second it started
        "inf-1,9,9,60,0,51,2,V100M16|T4,inference,,0",  # several types allowed: the default reference
    ]
    path = tmp_path / "pods.csv"
    path.write_text(CLUSTER_HEADER + "\n" + "\n".join(rows) + "\n")
    trace = read_trace(path, seed=0)
    assert trace.job_ids == ["gpu-1", "inf-1"]
    assert trace.ref_gpu == ["t4", "a100-sxm4-80gb"] and trace.kind == ["training", "inference"]
    (note,) = [a for a in trace.assumptions if "cluster trace" in a]
    assert "5 of its 7 rows" in note and "2 without GPUs" in note and "1 still running" in note
    assert "1 without an observed submission or end" in note and "1 ending in the second" in note


def test_templates_fit_their_reference_gpu(tmp_path: Path) -> None:
    """A 16 GB T4 cannot train opt-1.3b or qwen2-1.5b: a job that ran on a T4 gets a template that runs
    there, else its duration could not be scaled and the job would fit no pool."""
    rows = [f"j{i},{i},1,100,t4" for i in range(40)]
    path = tmp_path / "t.csv"
    path.write_text("job_id,submit_time_s,gpu_count,duration_s,reference_gpu\n" + "\n".join(rows) + "\n")
    trace = read_trace(path, seed=1)
    assert set(trace.model) <= {"gpt2", "bert-large"} and len(set(trace.model)) == 2


def test_without_a_template_for_the_reference_a_smaller_tier_runs(tmp_path: Path) -> None:
    """No 8B template trains on 4 x V100 32 GB: a 4-GPU job that ran there gets a smaller template."""
    path = tmp_path / "t.csv"
    path.write_text("submit_time_s,gpu_count,duration_s,reference_gpu\n0,4,100,v100-sxm2-32gb\n")
    assert read_trace(path).model[0] in ("opt-1.3b", "qwen2-1.5b")


def test_a_job_whose_template_cannot_run_on_its_reference_says_so() -> None:
    builder = TraceBuilder(seed=0)
    builder.add_duration("j", 0.0, 1, 100.0, ref_gpu="t4", model="llama-3.1-70b")
    trace = builder.build()
    pools = [NodePool(gpu="h100-sxm", nodes=1, gpus_per_node=8)]
    costs = job_costs(trace, pools, CostCache())
    assert not costs.feasible[0].any()
    assert "llama-3.1-70b training) does not run on 1 x t4" in costs.job_reason(trace, 0, pools)


def test_empty_and_missing_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("submit_time_s,model\n")
    with pytest.raises(InvalidInputError, match="no jobs"):
        read_trace(path)
    with pytest.raises(InvalidInputError, match="not found"):
        read_trace(tmp_path / "missing.csv")


def test_the_rows_order_does_not_change_the_plan(tmp_path: Path) -> None:
    """The same jobs in another row order are the same plan: each duration-only job's template is drawn
    from the seed and its job id (not from its place in the file), and simultaneous submissions queue
    by job id. (Before, shuffling the Alibaba pods changed the fleet energy by 90 %.)"""
    from energaizer.planner.plan import PlanOptions, run_plan

    rows = [f"j{i:02d},{(i // 3) * 400},{1 + 3 * (i % 2)},{900 + 250 * i}" for i in range(36)]
    shuffled = rows[::-1][1::2] + rows[::-1][0::2]
    header = "job_id,submit_time_s,gpu_count,duration_s\n"
    (tmp_path / "a.csv").write_text(header + "\n".join(rows) + "\n")
    (tmp_path / "b.csv").write_text(header + "\n".join(shuffled) + "\n")
    a, b = (read_trace(tmp_path / name, seed=4) for name in ("a.csv", "b.csv"))
    assert a.job_ids == b.job_ids and a.model == b.model
    assert len(set(a.model)) > 2  # the draws differ between jobs
    pools = [NodePool(gpu="h100-sxm", nodes=1, gpus_per_node=4), NodePool(gpu="l4", nodes=1, gpus_per_node=4)]
    cache = CostCache()
    ra, rb = (run_plan(t, pools, PlanOptions(seed=4), cache=cache) for t in (a, b))
    for ma, mb in zip(ra.metrics, rb.metrics, strict=True):
        assert ma.model_dump(exclude={"simulation_seconds"}) == mb.model_dump(exclude={"simulation_seconds"})
    assert ra.horizon_seconds == rb.horizon_seconds


@pytest.mark.parametrize(
    ("pool", "needle"),
    [
        ("{gpu: l4, nodes: 1, gpus_per_node: 4, power_limit_w: 10}", "power_limit_w 10 W is outside l4's"),
        (
            "{gpu: l4, nodes: 1, gpus_per_node: 4, frequency_mhz: 4000}",
            "frequency_mhz 4000 MHz is outside l4's",
        ),
    ],
)
def test_a_pool_knob_outside_its_gpus_range_names_the_pool(tmp_path: Path, pool: str, needle: str) -> None:
    """Refused while reading the pools file, naming the pool (was: by the estimator, naming neither)."""
    path = tmp_path / "pools.yaml"
    path.write_text(f"- {{gpu: h100-sxm, nodes: 1, gpus_per_node: 8}}\n- {pool}\n")
    with pytest.raises(InvalidInputError, match=rf"^pools\.1: .*pools\.yaml: {needle}"):
        read_pools(path)


def test_a_power_limit_sweep_outside_the_gpus_range_is_refused_before_the_plan() -> None:
    """``--power-limit-w l4=10`` (an L4 takes 40-72 W): an error naming the flag and the pool while
    parsing, not after the base plan has run (the sweep's estimate used to raise it, as
    ``power_limit_w``)."""
    pools = [NodePool(gpu="l4", nodes=1, gpus_per_node=4), NodePool(gpu="h100-sxm", nodes=1, gpus_per_node=8)]
    with pytest.raises(
        InvalidInputError, match=r"^--power-limit-w: pool l4: 10 W is outside l4's power-limit"
    ):
        parse_power_limits(["l4=60,10"], pools)
    assert parse_power_limits(["l4=40,72", "h100-sxm=400"], pools) == {
        "l4": [40.0, 72.0],
        "h100-sxm": [400.0],
    }
