"""docs/operator.md's tables of conditions and Events are the ones the operator writes: every condition
type, status and reason and every Event reason and type in the operator's code (read from its source,
so that a new reason cannot be added without its row) is in the tables, and the tables name no other; the
annotations and labels the operator writes are named in the docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import energaizer_operator.constants as constants
from energaizer_operator.gate import ANNOTATION_ENERGY_SLACK, ANNOTATION_GPU_TYPES, ANNOTATION_MAX_SLOWDOWN
from energaizer_operator.measured import Reason
from energaizer_operator.models import Phase

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "operator" / "energaizer_operator").rglob("*.py"))
OPERATOR_MD = (ROOT / "docs" / "operator.md").read_text()
HEADING = "## Conditions and Events"


def _const(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _from_code() -> tuple[set[tuple[str, str | None, str]], dict[str, str]]:
    """({(condition type, "True"/"False"/None when computed, reason)}, {Event reason: Normal|Warning})."""
    conditions: set[tuple[str, str | None, str]] = set()
    events: dict[str, str] = {}
    for path in SOURCES:
        for call in ast.walk(ast.parse(path.read_text())):
            if not isinstance(call, ast.Call):
                continue
            func = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
            args = call.args
            warning = _const(_keyword(call, "warning")) is True
            if func == "Condition" and len(args) >= 3 and isinstance(_const(args[2]), str):
                status = _const(args[1])
                conditions.add(
                    (str(_const(args[0])), None if status is None else str(status), str(_const(args[2])))
                )
            elif func == "Event" and args and isinstance(_const(args[0]), str):
                events[str(_const(args[0]))] = "Warning" if warning else "Normal"
            elif func == "GateDecision" and len(args) >= 2 and isinstance(_const(args[1]), str):
                events[str(_const(args[1]))] = "Warning" if warning else "Normal"
            elif func == "event" and isinstance(_const(_keyword(call, "reason")), str):
                events[str(_const(_keyword(call, "reason")))] = str(_const(_keyword(call, "type")))
    # Written from values, not literals: the Running condition carries the Job's phase
    # (placer._mirror, placer._lost); the Measured condition the measurement's Reason, and a final one
    # other than Measured and JobDeleted (whose Event is the placer's) is also a Warning Event
    # (measured_handlers: kopf.event(..., reason=outcome.reason.value)).
    conditions.add(("Running", "True", Phase.RUNNING.value))
    conditions |= {("Running", "False", p.value) for p in (Phase.SUCCEEDED, Phase.FAILED)}
    conditions |= {("Measured", str(r is Reason.MEASURED), r.value) for r in Reason}
    events |= {
        r.value: "Warning" for r in Reason if r.final and r not in (Reason.MEASURED, Reason.JOB_DELETED)
    }
    return conditions, events


def _from_docs() -> tuple[set[tuple[str, str, str]], dict[str, str]]:
    assert HEADING in OPERATOR_MD, f"docs/operator.md has no section {HEADING!r}"
    section = OPERATOR_MD.split(HEADING, 1)[1].split("\n## ", 1)[0]
    conditions = set()
    for kind, status, reasons in re.findall(
        r"^\| `(\w+)` \| `(True|False)` \| ([^|]+) \|", section, flags=re.M
    ):
        conditions |= {(kind, status, r) for r in re.findall(r"`(\w+)`", reasons)}
    events: dict[str, str] = {}
    for reasons, kind in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| (Normal|Warning) \|", section, flags=re.M):
        events |= dict.fromkeys(re.findall(r"`(\w+)`", reasons), kind)
    return conditions, events


def test_the_condition_table_is_what_the_operator_writes() -> None:
    code, _ = _from_code()
    docs, _ = _from_docs()
    assert len(code) >= 20
    computed = {(k, r) for k, s, r in code if s is None}
    fixed = {c for c in code if c[1] is not None}
    assert fixed <= docs, f"written, not in docs/operator.md: {sorted(fixed - docs)}"
    assert all(any((k, r) == (dk, dr) for dk, _, dr in docs) for k, r in computed), computed
    extra = {d for d in docs if d not in fixed and (d[0], d[2]) not in computed}
    assert not extra, f"docs/operator.md names conditions the operator never writes: {sorted(extra)}"


def test_the_event_table_is_what_the_operator_posts() -> None:
    _, code = _from_code()
    _, docs = _from_docs()
    assert len(code) >= 15
    wrong = {r: (docs.get(r), kind) for r, kind in code.items() if docs.get(r) != kind}
    assert not wrong, f"Event reason: (documented, posted): {wrong}"
    assert docs.keys() <= code.keys(), (
        f"docs/operator.md names Events never posted: {docs.keys() - code.keys()}"
    )


def test_the_annotations_and_labels_written_are_documented() -> None:
    names = [
        v for k, v in vars(constants).items() if k.startswith(("ANNOTATION_", "AIJOB_LABEL", "LEASE_NAME"))
    ]
    names += [ANNOTATION_GPU_TYPES, ANNOTATION_ENERGY_SLACK, ANNOTATION_MAX_SLOWDOWN]
    docs = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    missing = [n for n in names if f"`{n}`" not in docs]
    assert not missing, f"written or read by the operator, in no doc: {missing}"
    for key in set(re.findall(r"`(energaizer\.io/[a-z0-9.-]+)", docs)) - {constants.API_VERSION}:
        assert any(key in p.read_text() for p in SOURCES), (
            f"the docs name {key}, which the operator never uses"
        )


def test_measured_energy_md_explains_every_reason_without_a_number() -> None:
    text = (ROOT / "docs" / "measured-energy.md").read_text()
    section = text.split("## When there is no number", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)`", section, flags=re.M))
    reasons = {r.value for r in Reason} - {Reason.MEASURED.value}
    assert rows <= reasons, f"measured-energy.md explains reasons the operator never writes: {rows - reasons}"
    assert all(f"`{r}`" in section for r in reasons), {r for r in reasons if f"`{r}`" not in section}
