"""Readable units for ``kubectl get aijobs`` (status strings next to the exact numbers)."""

from __future__ import annotations

import math


def readable_energy(joules: float) -> str:
    """``1.2 MJ``, ``350 kJ``, ``12 J``: three significant digits, SI prefixes."""
    if not math.isfinite(joules):
        return "-"
    for unit, scale in (("TJ", 1e12), ("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"


def readable_duration(seconds: float) -> str:
    """``45s``, ``12m30s``, ``3h05m``, ``2d04h``: kubectl's style for ages and durations."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.2g}s" if seconds < 1 else f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def readable_savings(savings_joules: float, worst_joules: float) -> str:
    """``310 kJ (24%)``: energy saved against the worst feasible type, and its share of that type's."""
    text = readable_energy(savings_joules)
    if worst_joules > 0 and math.isfinite(worst_joules):
        text += f" ({100 * savings_joules / worst_joules:.0f}%)"
    return text


def readable_placement(
    energy_joules: float, duration_seconds: float, savings_joules: float
) -> dict[str, object]:
    """The extension fields of ``status.placement`` (camelCase, as written to the API)."""
    return {
        "predictedDurationSeconds": duration_seconds,
        "predictedEnergy": readable_energy(energy_joules),
        "predictedDuration": readable_duration(duration_seconds),
        "savings": readable_savings(savings_joules, energy_joules + savings_joules),
    }
