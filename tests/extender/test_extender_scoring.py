"""The extender's pure parts: the score rule, the bounded cache, product resolution."""

from __future__ import annotations

from energaizer_operator.extender.scoring import LRU, Scorer
from energaizer_operator.models import EstimateStatus


def est(gpu_type: str, energy: float, feasible: bool = True) -> EstimateStatus:
    return EstimateStatus(
        gpu_type=gpu_type,
        energy_joules=energy,
        duration_seconds=1.0,
        average_power_watts=energy,
        feasible=feasible,
        reason="" if feasible else "does not fit",
    )


def test_scores_are_proportional_to_the_least_energy() -> None:
    scores = Scorer().type_scores(
        {
            "a": est("a", 100.0),
            "b": est("b", 200.0),  # twice the energy: half the score
            "c": est("c", 100.4),  # not the least: at most 9 even when rounding says 10
            "d": est("d", 5000.0),
            "e": est("e", float("nan"), feasible=False),
        }
    )
    assert scores == {"a": 10, "b": 5, "c": 9, "d": 0, "e": 0}
    assert Scorer().type_scores({"x": est("x", 1.0, feasible=False)}) == {"x": 0}


def test_lru_forgets_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2


def test_products_resolve_through_the_map_and_unknowns_score_zero() -> None:
    scorer = Scorer(product_map={"ACME-1": "h100-sxm", "ACME-2": "no-such-gpu"})
    assert scorer.gpu_type_of_product("NVIDIA-H100-80GB-HBM3") == "h100-sxm"
    assert scorer.gpu_type_of_product("ACME-1") == "h100-sxm"
    assert scorer.gpu_type_of_product("ACME-2") is None  # a map entry naming no catalog GPU
    assert scorer.gpu_type_of_product("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb") is None
    assert scorer.gpu_type_of_product(None) is None


def test_an_annotation_nested_too_deeply_is_a_malformed_annotation() -> None:
    """JSON nested past Python's recursion limit is the pod's bad input (the filter's Error, prioritize's
    422, the Kueue gate's Invalid), not a RecursionError the server answered with HTTP 500."""
    import pytest

    from energaizer.errors import InvalidInputError

    pod = {
        "metadata": {"annotations": {"energaizer.io/workload": "[" * 100_000}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }
    for verb in (Scorer().filter, Scorer().prioritize):
        with pytest.raises(InvalidInputError, match=r"^energaizer\.io/workload: not JSON"):
            verb(pod, {"a": "h100-sxm"})


def test_nan_and_infinity_in_an_annotation_are_not_json_numbers() -> None:
    """Python's json takes NaN and Infinity; JSON does not, and the error says so (not 'must be <= 5000')."""
    import json

    import pytest
    from energaizer_operator.pod_workload import parse_workload

    from energaizer.errors import InvalidInputError

    base = {"model": "llama-3.1-8b", "inference": {"requests": 10}}
    for constant in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(base)[:-1] + f', "frequencyMhz": {constant}}}'
        with pytest.raises(InvalidInputError, match=rf"not JSON: {constant} is not a JSON number"):
            parse_workload(text)
    assert parse_workload(json.dumps(base | {"frequencyMhz": 1000})).frequency_mhz == 1000
