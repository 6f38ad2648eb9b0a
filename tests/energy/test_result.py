"""The result types: the columnar JSON rows are the pydantic dump."""

from __future__ import annotations


def test_fast_json_rows_match_pydantic_dump(llama_serving):
    from energaizer import estimate_matrix

    batch = estimate_matrix([llama_serving(), llama_serving(model="llama-3.1-405b")], ["h100-sxm", "l4"])
    slow = [e.model_dump() for e in batch.to_estimates()]
    fast = batch.to_dicts(ops=True)
    for a, b in zip(slow, fast, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and a[k] != a[k]:
                assert b[k] is None
            elif k not in ("breakdown", "time_breakdown") or all(x == x for x in a[k].values()):
                assert a[k] == b[k], k
