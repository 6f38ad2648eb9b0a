"""README's Python API section runs as written: its code block, and the calls its prose names
(`energaizer.whatif.recommend_power_cap`, `energaizer.whatif.sweep`, `ProfileFitter`'s fitted attributes are
in tests/calibration/test_fit.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_python_api_block_runs_and_gives_what_it_shows(capsys) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    scope: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), scope)
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [p[0] for p in printed] == ["h100-sxm", "a100-sxm4-80gb", "l40s"]
    assert all(float(p[1]) > 0 and float(p[2]) > 0 and p[3] == "True" for p in printed)
    batch = scope["batch"]
    assert batch.energy_joules.shape == (4,)  # type: ignore[attr-defined]  # 2 workloads x 2 GPU types


def test_the_power_cap_advice_the_readme_names() -> None:
    from energaizer import Workload, whatif

    assert '`energaizer.whatif.recommend_power_cap(w, "h100-sxm", max_slowdown=0.1)`' in README
    w = Workload(
        model="llama-3.1-8b",
        inference={"requests": 1000, "input_tokens": 512, "output_tokens": 256, "batch_size": 32},
    )
    advice = whatif.recommend_power_cap(w, "h100-sxm", max_slowdown=0.1)
    assert advice.power_limit_watts > 0 and advice.sm_clock_mhz > 0
    assert advice.energy_joules <= advice.baseline_energy_joules
    assert advice.duration_seconds <= 1.1 * advice.baseline_duration_seconds * (1 + 1e-9)
    assert callable(whatif.sweep)
