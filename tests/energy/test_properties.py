"""Property test: any valid workload on any catalog GPU yields finite, positive, consistent numbers."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energaizer import Workload, estimate
from energaizer.catalog import get_model, list_gpus

MODELS = ["llama-3.1-8b", "qwen3-30b-a3b", "gpt2", "bert-large", "mixtral-8x7b", "resnet-50", "vit-large"]
GPUS = [g.id for g in list_gpus()]

inference = st.fixed_dictionaries(
    {
        "requests": st.integers(1, 10**6),
        "input_tokens": st.integers(1, 32768),
        "output_tokens": st.integers(0, 8192),
        "batch_size": st.integers(1, 1024),
    }
)
training = st.fixed_dictionaries(
    {
        "tokens": st.floats(1e5, 1e12),
        "global_batch_size": st.integers(1, 4096),
        "sequence_length": st.integers(16, 16384),
    }
)


@st.composite
def workloads(draw):
    model = draw(st.sampled_from(MODELS))
    precision = draw(st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8", "fp4"]))
    heads = get_model(model).heads or 1
    # valid layouts only: tensor parallelism over the GPUs of a replica divides the attention heads
    count = draw(st.sampled_from([c for c in (1, 2, 4, 8) if heads % c == 0 or model == "resnet-50"]))
    if draw(st.booleans()):
        return Workload(model=model, precision=precision, gpu_count=count, inference=draw(inference))
    return Workload(
        model=model, task="training", precision=precision, gpu_count=count, training=draw(training)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=workloads(), gpu=st.sampled_from(GPUS))
def test_valid_workload_gives_finite_positive_numbers(w, gpu):
    (e,) = estimate(w, gpu)
    if not e.feasible:
        assert e.reason
        return
    for v in (e.energy_joules, e.duration_seconds, e.average_power_watts):
        assert math.isfinite(v) and v > 0
    assert all(math.isfinite(v) and v >= 0 for v in e.breakdown.values())
    assert math.isclose(sum(e.breakdown.values()), e.energy_joules, rel_tol=1e-6)
    assert e.average_power_watts <= e.power_limit_w * e.gpu_count * (1 + 1e-6)


def test_every_catalog_model_estimates_on_every_catalog_gpu():
    """Each model of the catalog on each GPU of the catalog, served (bf16, 8 at a time) and trained (bf16,
    8 GPUs, the layout searched per GPU), in one batch: a number that is finite and within the board's
    limits, or infeasible with a reason; a new catalog entry cannot ship broken on some GPU."""
    from energaizer.catalog import list_models
    from energaizer.estimator import estimate_pairs

    pairs = []
    for m in list_models():
        serve = {"requests": 64, "input_tokens": 1000, "output_tokens": 200, "batch_size": 8}
        train = {"steps": 2, "global_batch_size": 64, "sequence_length": 1024}
        for gpu in GPUS:
            pairs.append((Workload(model=m.id, precision="bf16", inference=serve), gpu))
            pairs.append((Workload(model=m.id, task="training", gpu_count=8, training=train), gpu))
    out = estimate_pairs([w for w, _ in pairs], [g for _, g in pairs]).to_estimates()
    assert len(out) == len(pairs) > 1000
    feasible = 0
    for e in out:
        if not e.feasible:
            assert e.reason
            continue
        feasible += 1
        for v in (e.energy_joules, e.duration_seconds, e.average_power_watts):
            assert math.isfinite(v) and v > 0, e
        assert e.average_power_watts <= e.power_limit_w * e.gpu_count * (1 + 1e-6)
    assert feasible > len(pairs) // 2
