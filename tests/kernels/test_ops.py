"""Every kernel has an operation name; the per-op figures add up to the totals."""

from __future__ import annotations

import pytest

from energaizer import Workload, estimate
from energaizer.kernels.ops import OP_KIND, OP_NAMES, Kind, Op


def test_every_op_has_one_kind_and_a_name():
    assert set(OP_KIND) == set(Op)
    assert len(set(OP_NAMES)) == len(Op)
    assert OP_KIND[Op.ATTENTION] is Kind.ATTENTION and OP_KIND[Op.TP_ALLREDUCE] is Kind.COMM


def _ops(w: Workload, gpu: str = "h100-sxm") -> tuple:
    (e,) = estimate(w, gpu)
    return e, {name: o for name, o in e.ops.items() if o.energy_joules}


@pytest.mark.parametrize(
    ("workload", "present", "absent"),
    [
        (
            Workload(
                model="llama-3.1-8b",
                inference={"requests": 64, "input_tokens": 512, "output_tokens": 64, "batch_size": 16},
                gpu_count=2,
            ),
            {
                "qkv_proj",
                "attn_out",
                "mlp_up",
                "mlp_down",
                "attention",
                "norm_act",
                "lm_head",
                "logits",
                "embedding",
                "tp_allreduce",
            },
            {"moe_up", "attn_scores", "optimizer", "conv"},
        ),
        (
            Workload(
                model="mixtral-8x7b",
                inference={"requests": 64, "input_tokens": 512, "output_tokens": 64, "batch_size": 16},
                gpu_count=2,
            ),
            {"moe_up", "moe_down", "router"},
            {"mlp_up", "mlp_down"},
        ),
        (
            Workload(
                model="bert-large",
                inference={"requests": 8, "input_tokens": 128, "output_tokens": 0},
                attention="eager",
                execution="eager",
            ),
            {"attn_scores", "softmax", "attn_values"},
            {"attention", "lm_head", "tp_allreduce"},
        ),
        (
            Workload(
                model="gpt2",
                task="training",
                gpu_count=2,
                training={"steps": 10, "global_batch_size": 8, "sequence_length": 512},
            ),
            {"optimizer", "grad_allreduce", "lm_head", "logits"},
            {"embedding"},
        ),
        (
            Workload(model="resnet-50", inference={"requests": 64, "batch_size": 32}),
            {"conv", "norm_act", "linear", "elementwise"},
            {"qkv_proj", "attention"},
        ),
    ],
)
def test_ops_name_what_the_workload_runs_and_add_up(workload, present, absent):
    e, ops = _ops(workload)
    assert present <= set(ops), sorted(ops)
    assert not absent & set(ops), sorted(ops)
    energy = sum(o.energy_joules for o in ops.values())
    seconds = sum(o.duration_seconds for o in e.ops.values())
    assert energy == pytest.approx(e.energy_joules - e.breakdown["overhead"], rel=1e-9)
    assert seconds == pytest.approx(e.duration_seconds - e.time_breakdown["overhead"], rel=1e-9)


def test_infeasible_rows_have_null_ops():
    w = Workload(model="llama-3.1-405b", inference={"requests": 1, "input_tokens": 128, "output_tokens": 8})
    (too_big,) = estimate(w, "l4")
    assert not too_big.feasible
    assert all(o.energy_joules is None and o.duration_seconds is None for o in too_big.ops.values())
