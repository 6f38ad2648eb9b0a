"""PNG plots of a plan (matplotlib, Agg backend): energy per policy, cumulative energy over time,
GPU utilisation per pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from energaizer.planner.plan import J_PER_KWH, PlanResult

PLOT_FILES = ("energy_per_policy.png", "cumulative_energy.png", "utilisation_per_pool.png")


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, path: Path, title: str, dpi: int) -> Path:  # type: ignore[no-untyped-def]
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_plots(result: PlanResult, directory: str | Path, dpi: int = 110) -> list[Path]:
    """Write the three PNGs into ``directory`` (created if needed); returns their paths."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [
        _energy_per_policy(plt, result, out / PLOT_FILES[0], colors, dpi),
        _cumulative_energy(plt, result, out / PLOT_FILES[1], colors, dpi),
        _utilisation(plt, result, out / PLOT_FILES[2], colors, dpi),
    ]


def _energy_per_policy(plt, result: PlanResult, path: Path, colors: list[str], dpi: int) -> Path:  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = [m.name for m in result.metrics]
    kwh = [m.total_energy_kwh for m in result.metrics]
    bars = ax.bar(names, kwh, color=colors[: len(names)])
    lb = result.lower_bound_energy_joules / J_PER_KWH
    ax.axhline(lb, color="black", linestyle="--", linewidth=1, label=f"lower bound {lb:,.1f} kWh")
    for bar, m in zip(bars, result.metrics, strict=True):
        gap = m.gap_to_lower_bound
        label = f"{m.total_energy_kwh:,.1f}" + (f"\n(+{gap:.1%})" if gap is not None else "")
        ax.annotate(
            label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8
        )
    ax.set_ylabel("job energy (kWh)")
    ax.set_ylim(0, max([*kwh, lb]) * 1.2 or 1.0)
    return _finish(plt, fig, ax, path, "Energy per policy", dpi)


def _cumulative_energy(plt, result: PlanResult, path: Path, colors: list[str], dpi: int) -> Path:  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    t0 = float(result.trace.submit.min()) if len(result.trace) else 0.0
    for k, (name, sched) in enumerate(result.schedules.items()):
        ran = sched.pool >= 0
        order = np.argsort(sched.end[ran])
        t = np.concatenate([[0.0], (sched.end[ran][order] - t0) / 3600.0])
        e = np.concatenate([[0.0], np.cumsum(sched.energy[ran][order]) / J_PER_KWH])
        ax.step(t, e, where="post", label=name, color=colors[k % len(colors)])
    ax.set_xlabel("hours since first submission")
    ax.set_ylabel("cumulative job energy (kWh)")
    return _finish(plt, fig, ax, path, "Cumulative energy over time (at job completion)", dpi)


def _utilisation(plt, result: PlanResult, path: Path, colors: list[str], dpi: int) -> Path:  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    pools = [p.name for p in result.pools]
    x = np.arange(len(pools))
    n = len(result.metrics)
    width = 0.8 / max(n, 1)
    for k, m in enumerate(result.metrics):
        offset = (k - (n - 1) / 2) * width
        util = [m.utilisation[p] * 100 for p in pools]
        ax.bar(x + offset, util, width, label=m.name, color=colors[k % len(colors)])
    ax.set_xticks(x, pools, rotation=15)
    ax.set_ylabel("GPU utilisation over the makespan (%)")
    ax.set_ylim(0, 100)
    return _finish(plt, fig, ax, path, "Utilisation per pool", dpi)
