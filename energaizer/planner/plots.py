"""PNG plots of a plan (matplotlib, Agg backend): fleet energy per policy (jobs + idle), cumulative
job energy over time, GPU utilisation per pool, and the distribution of waits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from energaizer.planner.plan import J_PER_KWH, PlanResult

PLOT_FILES = (
    "energy_per_policy.png",
    "cumulative_energy.png",
    "utilisation_per_pool.png",
    "wait_time_distribution.png",
)


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
    """Write the PNGs of :data:`PLOT_FILES` into ``directory`` (created if needed); returns their paths."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [
        _energy_per_policy(plt, result, out / PLOT_FILES[0], colors, dpi),
        _cumulative_energy(plt, result, out / PLOT_FILES[1], colors, dpi),
        _utilisation(plt, result, out / PLOT_FILES[2], colors, dpi),
        _wait_distribution(plt, result, out / PLOT_FILES[3], colors, dpi),
    ]


def _energy_per_policy(plt, result: PlanResult, path: Path, colors: list[str], dpi: int) -> Path:  # type: ignore[no-untyped-def]
    from energaizer.planner.report import fleet_headline

    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = [m.name for m in result.metrics]
    job = [m.total_energy_kwh for m in result.metrics]
    idle = [m.idle_energy_joules / J_PER_KWH for m in result.metrics]
    fleet = [m.fleet_energy_kwh for m in result.metrics]
    ax.bar(names, job, color=colors[: len(names)], label="jobs")
    ax.bar(names, idle, bottom=job, color="lightgrey", hatch="//", edgecolor="grey", label="idle GPUs")
    lb = result.lower_bound_fleet_energy_joules / J_PER_KWH
    ax.axhline(lb, color="black", linestyle="--", linewidth=1, label=f"fleet lower bound {lb:,.1f} kWh")
    for k, m in enumerate(result.metrics):
        gap = m.gap_to_fleet_lower_bound
        label = f"{fleet[k]:,.1f}" + (f"\n(+{gap:.1%})" if gap is not None else "")
        ax.annotate(label, (k, fleet[k]), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"fleet energy over {result.horizon_seconds / 3600:,.1f} h (kWh)")
    ax.set_ylim(0, max([*fleet, lb]) * 1.4 or 1.0)
    title = f"Fleet energy per policy ({result.options.fleet_mode.value})"
    ax.set_xlabel(fleet_headline(result.options))
    return _finish(plt, fig, ax, path, title, dpi)


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
    ax.set_ylabel(f"GPU utilisation over the {result.horizon_seconds / 3600:,.1f} h horizon (%)")
    ax.set_ylim(0, 100)
    return _finish(plt, fig, ax, path, "Utilisation per pool", dpi)


def _wait_distribution(plt, result: PlanResult, path: Path, colors: list[str], dpi: int) -> Path:  # type: ignore[no-untyped-def]
    """Empirical CDF of the waits (start - submit) per policy, with the wait limit marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    waits = {
        name: np.sort(sched.start[sched.pool >= 0] - result.trace.submit[sched.pool >= 0]) / 60.0
        for name, sched in result.schedules.items()
    }
    top = max((float(w[-1]) for w in waits.values() if w.size), default=0.0)
    for k, (name, w) in enumerate(waits.items()):
        if not w.size:
            continue
        frac = np.arange(1, w.size + 1) / w.size
        p95 = float(np.percentile(w, 95))
        ax.step(
            np.concatenate([[0.0], w]),
            np.concatenate([[float((w <= 0).mean())], frac]),
            where="post",
            color=colors[k % len(colors)],
            label=f"{name} (p95 {p95:,.1f} min, max {w[-1]:,.1f} min)",
        )
    limit = result.options.max_wait_seconds / 60.0
    if np.isfinite(limit):
        ax.axvline(limit, color="black", linestyle=":", linewidth=1, label=f"wait limit {limit:g} min")
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=0.8)
    if top > 0:
        ax.set_xscale("symlog", linthresh=1.0)
    right = max(top, limit if np.isfinite(limit) else 0.0, 1.0) * 1.3
    ax.set_xlim(0.0, right)
    ax.set_xlabel("wait before start (min)")
    ax.set_ylabel("fraction of jobs")
    ax.set_ylim(0, 1.05)
    return _finish(plt, fig, ax, path, "Wait-time distribution", dpi)
