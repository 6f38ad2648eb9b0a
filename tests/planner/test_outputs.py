"""What users see: the CLI's JSON shape and errors, the CSV file and the PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from energaizer.cli.app import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_demo_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "plan", "--demo", "--demo-jobs", "120", "--seed", "3", "--json")
    assert code == 0
    doc = json.loads(out)
    names = [p["name"] for p in doc["policies"]]
    assert {"energy-aware", "first-fit", "fastest-gpu"} <= set(names)
    for p in doc["policies"]:
        for key in (
            "total_energy_joules",
            "makespan_seconds",
            "mean_wait_seconds",
            "p95_wait_seconds",
            "max_wait_seconds",
            "idle_energy_joules",
            "fleet_energy_joules",
        ):
            assert isinstance(p[key], (int, float)) and p[key] >= 0
        assert p["fleet_energy_joules"] == pytest.approx(p["total_energy_joules"] + p["idle_energy_joules"])
        assert p["makespan_seconds"] <= doc["horizon_seconds"] + 1e-6
        assert p["fleet_energy_joules"] >= doc["lower_bound_fleet_energy_joules"] * (1 - 1e-9)
    assert isinstance(doc["lower_bound_energy_joules"], float) and doc["lower_bound_energy_joules"] > 0
    assert doc["fleet_mode"] == "static" and doc["energy_aware"]["max_wait_seconds"] == 900
    assert doc["assumptions"] and doc["seed"] == 3
    assert doc["trace"]["jobs"] == 120


def test_plan_elastic_mode_and_wait_limit_flags(capsys: pytest.CaptureFixture[str]) -> None:
    base = ("plan", "--demo", "--demo-jobs", "80", "--seed", "2", "--json")
    code, out, _ = run_cli(
        capsys, *base, "--fleet-mode", "elastic", "--idle-timeout-seconds", "300", "--max-wait-seconds", "60"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["fleet_mode"] == "elastic" and doc["idle_timeout_seconds"] == 300
    longest = max(p["makespan_seconds"] for p in doc["policies"])
    assert doc["horizon_seconds"] == pytest.approx(longest + 300)
    ea = next(p for p in doc["policies"] if p["name"] == "energy-aware")
    assert doc["energy_aware"]["max_wait_seconds"] == 60
    code, out, _ = run_cli(capsys, *base, "--max-wait-seconds", "inf")
    assert code == 0 and json.loads(out)["energy_aware"]["max_wait_seconds"] is None
    assert ea["max_wait_seconds"] >= 0


def test_plan_table_csv_plots_and_what_ifs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    csv_path = tmp_path / "plan.csv"
    plots = tmp_path / "plots"
    code, out, _ = run_cli(
        capsys,
        "plan",
        "--demo",
        "--demo-jobs",
        "100",
        "--add-pool",
        "h100-sxm:1x8",
        "--power-limit-w",
        "l4=60,72",
        "--csv",
        str(csv_path),
        "--plots",
        str(plots),
    )
    assert code == 0, out
    assert "energy-aware" in out and "lower-bound" in out and "power-limit sweep" in out
    assert "static fleet" in out and "fleet kWh" in out and "vs energy-aware" in out and "p95 wait" in out
    rows = list(csv.DictReader(csv_path.open()))
    assert {r["scenario"] for r in rows} == {"base", "l4@60W", "l4@72W"}
    assert "utilisation_h100-sxm-2" in rows[0]
    files = sorted(p.name for p in plots.iterdir())
    assert files == [
        "cumulative_energy.png",
        "energy_per_policy.png",
        "utilisation_per_pool.png",
        "wait_time_distribution.png",
    ]
    import matplotlib.image as mpimg

    for name in files:
        img = mpimg.imread(plots / name)
        assert img.shape[0] >= 300 and img.shape[1] >= 500
        rgb = img[..., :3]
        background = np.all(rgb > 0.98, axis=-1)
        assert (~background).mean() > 0.02, f"{name} is blank"
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10, f"{name} has no content"


def test_plan_json_on_user_files(
    capsys: pytest.CaptureFixture[str], pools_yaml: Path, trace_csv: Path
) -> None:
    code, out, _ = run_cli(capsys, "plan", "--pools", str(pools_yaml), "--trace", str(trace_csv), "--json")
    assert code == 0
    doc = json.loads(out)
    assert [p["name"] for p in doc["pools"]] == ["h100-sxm", "a100-sxm4-80gb", "l4-small"]
    assert doc["trace"]["jobs"] == 30


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["plan"], "--trace"),
        (["plan", "--trace", "x.csv"], "--pools"),
        (["plan", "--demo", "--add-pool", "h100"], "--add-pool"),
        (["plan", "--demo", "--power-limit-w", "nosuch=100"], "--power-limit-w"),
        (["plan", "--demo", "--policy", "random"], "--policy"),
        (["plan", "--demo", "--fleet-mode", "sometimes"], "--fleet-mode"),
        (["plan", "--demo", "--max-wait-seconds", "-1"], "--max-wait-seconds"),
        (["plan", "--demo", "--max-wait-seconds", "nan"], "--max-wait-seconds"),
        (["plan", "--demo", "--idle-timeout-seconds", "-5"], "--idle-timeout-seconds"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_pools_file_names_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trace_csv: Path
) -> None:
    pools = tmp_path / "p.yaml"
    pools.write_text("- {gpu: h100-sxm, nodes: 1, gpus_per_node: -8}\n")
    code, _, err = run_cli(capsys, "plan", "--pools", str(pools), "--trace", str(trace_csv))
    assert code == 2 and "gpus_per_node" in err


def test_plot_axes_name_the_quantity_the_metrics_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each plot labels its axes with the quantity and unit of the numbers it draws: the utilisation
    bars are the reported ``utilisation`` (busy GPU-seconds over GPUs x the common horizon, not the
    makespan) in %."""
    from energaizer.planner import plots
    from energaizer.planner.costs import CostCache
    from energaizer.planner.demo import DemoConfig, generate_demo
    from energaizer.planner.plan import PlanOptions, run_plan
    from energaizer.planner.pools import default_demo_pools

    pools = default_demo_pools()
    cache = CostCache()
    result = run_plan(
        generate_demo(pools, DemoConfig(jobs=60, seed=1), cache), pools, PlanOptions(), cache=cache
    )
    seen: dict[str, tuple[str, str, list[float]]] = {}
    finish = plots._finish

    def record(plt, fig, ax, path, title, dpi):  # type: ignore[no-untyped-def]
        heights = [float(b.get_height()) for b in ax.patches]
        seen[Path(path).name] = (ax.get_xlabel(), ax.get_ylabel(), heights)
        return finish(plt, fig, ax, path, title, dpi)

    monkeypatch.setattr(plots, "_finish", record)
    plots.write_plots(result, tmp_path)
    _, ylabel, heights = seen["utilisation_per_pool.png"]
    assert "horizon" in ylabel and "makespan" not in ylabel and "(%)" in ylabel
    reported = [100 * p.utilisation for m in result.metrics for p in m.pools]
    assert sorted(heights) == pytest.approx(sorted(reported))
    assert "(kWh)" in seen["energy_per_policy.png"][1] and "(kWh)" in seen["cumulative_energy.png"][1]
    assert "(min)" in seen["wait_time_distribution.png"][0] and "hours" in seen["cumulative_energy.png"][0]


def test_a_gzip_compressed_trace_is_named_as_such(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pools_yaml: Path, trace_csv: Path
) -> None:
    """A gzip-compressed trace (how published traces often come) is one line that says so and how to
    read it, exit 2; the same rows uncompressed plan."""
    import gzip

    packed = tmp_path / "trace.csv.gz"
    packed.write_bytes(gzip.compress(trace_csv.read_bytes()))
    code, _, err = run_cli(capsys, "plan", "--pools", str(pools_yaml), "--trace", str(packed), "--json")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: trace: ") and "gzip-compressed" in err and "gunzip" in err
    code, out, _ = run_cli(capsys, "plan", "--pools", str(pools_yaml), "--trace", str(trace_csv), "--json")
    assert code == 0 and json.loads(out)["trace"]["jobs"] == 30
