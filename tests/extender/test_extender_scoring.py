"""The extender's pure parts: the score rule, the bounded cache, product resolution."""

from __future__ import annotations

import contextlib

import pytest
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


def _big_annotations(n: int) -> list[str]:
    """``n`` distinct annotations of ~256 KiB (the API's limit for all of a pod's annotations): valid ones
    padded with spaces, an unknown model's long name, invalid JSON, and a custom architecture with 30,000
    aliases (whose parse holds ~2.4 MB)."""
    import json

    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(
                json.dumps({"model": "llama-3.1-8b", "inference": {"requests": 10 + i}}) + " " * 262_000
            )
        elif kind == 1:
            out.append(json.dumps({"model": f"m{i}" + "y" * 262_000}))
        elif kind == 2:
            out.append(f"{i}" + "{" * 262_000)
        else:
            arch = {
                "id": "x",
                "layers": 2,
                "hidden": 64,
                "heads": 4,
                "ffn": 128,
                "vocab": 1000,
                "paramsB": 0.001,
            }
            arch["aliases"] = [f"a{j}" for j in range(i, i + 30_000)]
            out.append(json.dumps({"architecture": arch, "inference": {"requests": 3}}))
    return out


def _gpu_pod(text: str) -> dict:
    return {
        "metadata": {"annotations": {"energaizer.io/workload": text}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }


def test_large_distinct_annotations_keep_the_parse_cache_within_its_byte_budget() -> None:
    """8,192 entries of 256 KiB annotations held gigabytes (a custom architecture's parse holds ~2.4 MB): the
    cache is bounded by bytes too, measured with tracemalloc, and evicts the large cold entries while the small
    hot ones (the pods of a Deployment, asked about again and again) stay cached, parsed once."""
    import gc
    import json
    import tracemalloc

    from energaizer.errors import InvalidInputError

    budget = 8 * 1024 * 1024
    scorer = Scorer(cache_bytes=budget)
    hot = [_gpu_pod(json.dumps({"model": "llama-3.1-8b", "inference": {"requests": r}})) for r in (1, 2, 3)]
    first = [scorer.pod_work(p) for p in hot]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in _big_annotations(60):  # ~15 MiB of annotation text, ~45 MiB of parses
            with contextlib.suppress(InvalidInputError):
                scorer.pod_work(_gpu_pod(text))
            assert [scorer.pod_work(p) for p in hot] == first
            assert all(scorer.pod_work(p) is w for p, w in zip(hot, first, strict=True))  # not parsed again
            assert scorer.works.bytes <= budget
        del text
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= budget * 1.1, held  # what the cache counts is what it holds
    assert 3 < len(scorer.works) < 40  # some large entries kept, most evicted
    # an entry over the whole budget is not kept at all
    small = Scorer(cache_bytes=64 * 1024)
    with pytest.raises(InvalidInputError):
        small.pod_work(_gpu_pod("{" * 100_000))
    assert len(small.works) == 0 and small.works.bytes == 0


def test_the_default_cache_budgets_fit_well_inside_the_charts_memory_limit() -> None:
    """Both caches at their byte budget take at most an eighth of the extender's memory limit."""
    from pathlib import Path

    import yaml
    from energaizer_operator.extender.scoring import CACHE_BYTES

    values = yaml.safe_load((Path(__file__).parents[2] / "charts/energaizer/values.yaml").read_text())
    limit = values["extender"]["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    assert int(limit[:-2]) * 1024 * 1024 / 8 >= 2 * CACHE_BYTES


def test_a_malformed_annotation_cached_keeps_no_request_alive() -> None:
    """The parse cache kept the exception object: each raise extended its traceback, whose frames held that
    request's pod and nodes (a whole NodeList in the Nodes form), so a pending bad pod retried kept every
    request it was asked in. The error is kept as text; each request gets a fresh exception."""
    import gc
    import weakref

    from energaizer.errors import InvalidInputError

    class Nodes(dict):
        pass

    scorer = Scorer()
    bad = _gpu_pod('{"model": "no-such-model"}')
    refs = []
    for _ in range(3):
        nodes = Nodes(a="h100-sxm")
        refs.append(weakref.ref(nodes))
        with pytest.raises(InvalidInputError, match="unknown model 'no-such-model'") as info:
            scorer.filter(bad, nodes)
        del nodes, info
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_a_key_named_twice_in_an_annotation_is_invalid_not_the_last_value() -> None:
    """``{"model": "a", "model": "b"}`` would keep "b" silently; it is a malformed annotation, as JSON
    read anywhere else in energaizer (energaizer.files.unique_keys): filter's Error, prioritize's 422,
    the gate's InvalidWorkload, all from the same InvalidInputError."""
    import pytest
    from energaizer_operator.extender.scoring import Scorer
    from energaizer_operator.pod_workload import parse_workload

    from energaizer.errors import InvalidInputError

    twice = '{"model": "qwen3-32b", "inference": {"requests": 10, "requests": 20}, "model": "llama-3.1-8b"}'
    with pytest.raises(
        InvalidInputError, match=r"^energaizer\.io/workload: not JSON: key 'requests' appears twice"
    ):
        parse_workload(twice)
    pod = {
        "metadata": {"annotations": {"energaizer.io/workload": twice}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }
    for verb in (Scorer().filter, Scorer().prioritize):
        with pytest.raises(InvalidInputError, match=r"appears twice in one object"):
            verb(pod, {"a": "h100-sxm"})
    assert parse_workload('{"model": "llama-3.1-8b", "inference": {"requests": 10}}').model == "llama-3.1-8b"
