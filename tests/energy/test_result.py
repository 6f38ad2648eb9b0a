"""The result types: the columnar JSON rows are the pydantic dump."""

from __future__ import annotations


def test_fast_json_rows_match_pydantic_dump(llama_serving):
    from energaizer import Workload, estimate_matrix

    training = Workload(
        model="gpt2",
        task="training",
        training={
            "tokens": 1e7,
            "sequence_length": 1024,
            "global_batch_size": 8,
            "activation_recomputation": True,
        },
    )
    batch = estimate_matrix(
        [llama_serving(), training, llama_serving(model="llama-3.1-405b")], ["h100-sxm", "l4"]
    )
    slow = [e.model_dump() for e in batch.to_estimates()]
    fast = batch.to_dicts(ops=True)
    for a, b in zip(slow, fast, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and a[k] != a[k]:
                assert b[k] is None
            elif k not in ("breakdown", "time_breakdown") or all(x == x for x in a[k].values()):
                assert a[k] == b[k], k
        # the layout's keys and their types (an int, a bool) as the pydantic rows hold them
        assert repr(a["layout"]) == repr(b["layout"])
    assert (
        "gradient_accumulation_steps" in fast[2]["layout"]
        and fast[3]["layout"]["activation_recomputation"] is True
    )
    assert "micro_batch_sequences" not in fast[0]["layout"]
