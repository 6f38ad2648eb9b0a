"""Generate the energaizer Grafana dashboard (``dashboards/energaizer.json``).

Run ``python dashboards/generate.py`` after editing; ``tests/deploy`` fails when the committed JSON
differs from this script's output. Every query uses only the operator's metric names
(contract, section 4; the measured-energy panels need ``ENERGAIZER_PROMETHEUS_URL``). The Helm chart ships the JSON in a ConfigMap for the Grafana sidecar.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("energaizer.json")
UID = "energaizer-operator"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
# Predicted figures of the GPU type each AIJob was placed on (placement_info is 1 for that type).
PLACED = "* on (namespace, aijob, gpu_type) group_left () energaizer_placement_info"
LATENCY = "sum by (le) (rate(energaizer_estimation_seconds_bucket[$__rate_interval]))"
# Counters of every placement decision (issue 17): the predicted energy placed per GPU type, and the
# predicted savings against each AIJob's worst feasible GPU type (status.placement.savingsJoules).
# increase() over a window gives the energy and savings of the decisions made in it, so they add up over
# time and survive deleted AIJobs.
PLACED_TOTAL = "energaizer_placed_predicted_energy_joules_total"
SAVINGS_TOTAL = "energaizer_predicted_savings_joules_total"
# Measured energy (contract sections 4 and 5): the predicted figure of the same AIJobs, on their placed type.
MEASURED = f"energaizer_measured_energy_joules{{{NS}}}"
PREDICTED_MEASURED = (
    f"energaizer_predicted_energy_joules{{{NS}}} {PLACED} and on (namespace, aijob) {MEASURED}"
)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False
    format: str | None = None  # Grafana target format, e.g. "heatmap" (cumulative buckets -> counts)


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # Grafana panel type: timeseries | stat | table | bargauge
    unit: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # top-level panel keys, e.g. transformations


PANELS: tuple[Panel, ...] = (
    Panel(
        "Predicted energy of placed AIJobs",
        "stat",
        "joule",
        (Query(f"sum(energaizer_predicted_energy_joules{{{NS}}} {PLACED})"),),
        width=6,
        height=5,
        description="Sum of the predicted GPU energy of every AIJob on the GPU type it was placed on.",
    ),
    Panel(
        "Predicted savings",
        "stat",
        "joule",
        (Query(f"sum(energaizer_predicted_savings_joules{{{NS}}})"),),
        width=6,
        height=5,
        description="Energy saved against placing each AIJob on its worst feasible GPU type.",
    ),
    Panel(
        "AIJobs",
        "stat",
        "short",
        (Query("sum(energaizer_aijobs)"),),
        width=6,
        height=5,
    ),
    Panel(
        "Free GPUs",
        "stat",
        "short",
        (Query("sum(energaizer_free_gpus)"),),
        width=6,
        height=5,
    ),
    Panel(
        "Predicted energy placed (time range)",
        "stat",
        "joule",
        (Query(f"sum(increase({PLACED_TOTAL}[$__range]))"),),
        width=6,
        height=5,
        description="Predicted GPU energy of the placement decisions made in the dashboard's time range "
        "(counter, so AIJobs deleted since still count).",
    ),
    Panel(
        "Predicted savings (time range)",
        "stat",
        "joule",
        (Query(f"sum(increase({SAVINGS_TOTAL}[$__range]))"),),
        width=6,
        height=5,
        description="Predicted energy saved by the placement decisions made in the dashboard's time range, "
        "against each AIJob's worst feasible GPU type (status.placement.savingsJoules).",
    ),
    Panel(
        "Predicted energy placed per hour by GPU type",
        "timeseries",
        "joule",
        (Query(f"sum by (gpu_type) (increase({PLACED_TOTAL}[1h]))", "{{gpu_type}}"),),
        description="Predicted GPU energy of the AIJobs placed on each GPU type in the preceding hour.",
    ),
    Panel(
        "Predicted savings per hour",
        "timeseries",
        "joule",
        (Query(f"sum(increase({SAVINGS_TOTAL}[1h]))", "savings"),),
        description="Predicted energy saved by the placements of the preceding hour.",
    ),
    Panel(
        "Predicted energy by namespace",
        "timeseries",
        "joule",
        (
            Query(
                f"sum by (namespace) (energaizer_predicted_energy_joules{{{NS}}} {PLACED})", "{{namespace}}"
            ),
        ),
    ),
    Panel(
        "Predicted energy by GPU type",
        "timeseries",
        "joule",
        (Query(f"sum by (gpu_type) (energaizer_predicted_energy_joules{{{NS}}} {PLACED})", "{{gpu_type}}"),),
    ),
    Panel(
        "Placements by GPU type",
        "timeseries",
        "short",
        (Query(f"sum by (gpu_type) (energaizer_placement_info{{{NS}}})", "{{gpu_type}}"),),
        description="Number of AIJobs placed on each GPU type.",
    ),
    Panel(
        "Predicted savings by namespace",
        "timeseries",
        "joule",
        (Query(f"sum by (namespace) (energaizer_predicted_savings_joules{{{NS}}})", "{{namespace}}"),),
    ),
    Panel(
        "Free GPUs per type",
        "timeseries",
        "short",
        (Query("sum by (gpu_type) (energaizer_free_gpus)", "{{gpu_type}}"),),
    ),
    Panel(
        "Predicted average power by GPU type",
        "timeseries",
        "watt",
        (Query(f"sum by (gpu_type) (energaizer_predicted_power_watts{{{NS}}} {PLACED})", "{{gpu_type}}"),),
        description="Sum of the predicted average board power of placed AIJobs.",
    ),
    Panel(
        "Estimation latency",
        "timeseries",
        "s",
        tuple(
            Query(
                f"histogram_quantile({q}, {LATENCY})",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.95, 0.99)
        ),
    ),
    Panel(
        "Estimations per second",
        "timeseries",
        "ops",
        (Query("sum(rate(energaizer_estimation_seconds_count[$__rate_interval]))", "estimations/s"),),
    ),
    Panel(
        "AIJobs by phase",
        "timeseries",
        "short",
        (Query("sum by (phase) (energaizer_aijobs)", "{{phase}}"),),
    ),
    Panel(
        "Predicted vs measured energy by GPU type",
        "timeseries",
        "joule",
        (
            Query(f"sum by (gpu_type) ({MEASURED})", "{{gpu_type}} measured"),
            Query(f"sum by (gpu_type) ({PREDICTED_MEASURED})", "{{gpu_type}} predicted"),
        ),
        description="AIJobs whose Job was measured with dcgm-exporter: measured energy and the energy "
        "predicted for the same AIJobs on the GPU type they ran on.",
    ),
    Panel(
        "Measured / predicted energy: distribution",
        "bargauge",
        "short",
        (
            Query(
                "sum by (le) (energaizer_prediction_error_ratio_bucket)",
                "{{le}}",
                instant=True,
                format="heatmap",
            ),
        ),
        width=6,
        description="Measured AIJobs by measured / predicted energy ratio (upper bucket bound; 1 = exact).",
    ),
    Panel(
        "Median measured / predicted by GPU type",
        "timeseries",
        "short",
        (
            Query(
                "histogram_quantile(0.5, sum by (gpu_type, le) (energaizer_prediction_error_ratio_bucket))",
                "{{gpu_type}}",
            ),
        ),
        width=6,
        description="Above 1: the estimator under-predicts on that GPU type (refit with export-measurements "
        "and calibrate).",
    ),
    Panel(
        "Measured energy by namespace",
        "timeseries",
        "joule",
        (Query(f"sum by (namespace) ({MEASURED})", "{{namespace}}"),),
        width=24,
        description="dcgm-exporter energy of the measured AIJobs of each namespace.",
    ),
    Panel(
        "AIJob placements",
        "table",
        "short",
        (
            Query(f"energaizer_predicted_energy_joules{{{NS}}} {PLACED}", instant=True, table=True),
            Query(f"energaizer_predicted_duration_seconds{{{NS}}} {PLACED}", instant=True, table=True),
            Query(f"energaizer_predicted_power_watts{{{NS}}} {PLACED}", instant=True, table=True),
            Query(f"energaizer_predicted_savings_joules{{{NS}}}", instant=True, table=True),
        ),
        width=24,
        description="Placed GPU type and predicted energy, duration, power and savings of each AIJob.",
        extra={"transformations": [{"id": "merge", "options": {}}]},
    ),
)


def _target(query: Query, ref_id: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": query.expr,
        "legendFormat": query.legend,
        "refId": ref_id,
        "range": not query.instant,
        "instant": query.instant,
    }
    if query.table:
        target["format"] = "table"
    elif query.format:
        target["format"] = query.format
    return target


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
    }
    if panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    elif panel.kind == "timeseries":
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    out.update(panel.extra)
    return out


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, Any]]:
    """Place panels left to right on Grafana's 24-column grid, wrapping to a new row when full."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append(_panel(panel, panel_id, x, y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    return placed


def _templating() -> dict[str, Any]:
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            },
            {
                "name": "namespace",
                "label": "Namespace",
                "type": "query",
                "datasource": DATASOURCE,
                "query": {"query": "label_values(energaizer_placement_info, namespace)", "refId": "ns"},
                "definition": "label_values(energaizer_placement_info, namespace)",
                "includeAll": True,
                "allValue": ".*",
                "multi": True,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "refresh": 2,
                "sort": 1,
                "hide": 0,
            },
        ]
    }


def build_dashboard() -> dict[str, Any]:
    """The dashboard as a Grafana JSON model (schemaVersion 39, Grafana 10/11)."""
    return {
        "uid": UID,
        "title": "energaizer: energy-aware AI job placement",
        "description": "Predicted GPU energy, placements and savings of AIJobs (energaizer operator).",
        "tags": ["energaizer", "gpu", "energy"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": _templating(),
        "panels": _layout(PANELS),
        "version": 1,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python dashboards/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
