"""Row parameters: the execution style (attention, dispatch) that ``auto`` resolves to."""

from __future__ import annotations

import pytest

from energaizer import Workload
from energaizer.catalog import get_model
from energaizer.kernels.params import execution_style


@pytest.mark.parametrize(
    ("inference", "expected"),
    [
        ({"output_tokens": 0, "batch_size": 8, "requests": 8}, ("eager", "eager")),
        ({"output_tokens": 64, "batch_size": 1, "requests": 4}, ("flash", "eager")),
        ({"output_tokens": 64, "batch_size": 32, "requests": 64}, ("flash", "graphs")),
    ],
)
def test_auto_resolves_to_the_usual_software_stack(inference, expected):
    w = Workload(model="llama-3.1-8b", inference=inference)
    assert execution_style(w, get_model("llama-3.1-8b")) == expected


def test_explicit_choices_override_auto():
    w = Workload(model="llama-3.1-8b", attention="flash", execution="graphs", inference={"output_tokens": 0})
    assert execution_style(w, get_model("llama-3.1-8b")) == ("flash", "graphs")
