"""Generate the AIJob CustomResourceDefinition from the pydantic models.

``python -m energaizer_operator.crd > manifests/crd/aijobs.energaizer.io.yaml`` writes the committed
manifest; a test regenerates it and fails on drift. The pydantic JSON schema is translated into a
Kubernetes *structural* schema: ``$ref`` inlined, ``Optional[X]`` -> ``nullable``, draft-2020
``exclusiveMinimum: n`` -> OpenAPI 3.0 ``minimum: n, exclusiveMinimum: true``, free-form objects ->
``x-kubernetes-preserve-unknown-fields``, and no titles, defaults or ``additionalProperties: false``
(the API server prunes unknown fields; the operator applies defaults and reports invalid specs).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from energaizer.catalog.schema import CNNSpec, ModelArchitecture
from energaizer_operator import GROUP, KIND, PLURAL, SHORT_NAME, VERSION
from energaizer_operator.models import AIJobSpec, AIJobStatus, camel_twins

_DROP = {"title", "default", "examples"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve(merged, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node (refs already inlined) -> one structural OpenAPI v3 node."""
    node = {k: v for k, v in node.items() if k not in _DROP}
    for key in ("anyOf", "oneOf"):
        if key in node:
            union = node.pop(key)
            options = [o for o in union if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"cannot express a union of {len(options)} types structurally: {options}")
            described = {k: v for k, v in node.items() if k == "description"}
            inner = {**_structural(options[0]), **described}
            if len(options) < len(union):
                inner["nullable"] = True
            return inner
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if node.get("type") == "object":
        extra = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        elif isinstance(extra, dict) and extra:
            node["additionalProperties"] = _structural(extra)
        else:
            node["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        node["items"] = _structural(node["items"])
    return node


def structural_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs))


def _column(
    name: str, json_path: str, kind: str = "string", priority: int = 0, **extra: str
) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": kind, "jsonPath": json_path}
    if priority:
        col["priority"] = priority
    col.update(extra)
    return col


# `kubectl get aijobs`: what a user scans; `-o wide` (priority 1) adds the exact numbers and the request.
PRINTER_COLUMNS: list[dict[str, Any]] = [
    _column("GPU Type", ".status.placement.gpuType"),
    _column("Energy", ".status.placement.predictedEnergy", description="predicted energy of the whole job"),
    _column("Duration", ".status.placement.predictedDuration", description="predicted duration"),
    _column("Savings", ".status.placement.savings", description="against the worst feasible GPU type"),
    _column("Job", ".status.placement.jobName"),
    _column("Phase", ".status.phase"),
    _column("Age", ".metadata.creationTimestamp", "date"),
    _column("Model", ".spec.workload.model", priority=1),
    _column("Task", ".spec.workload.task", priority=1),
    _column("GPUs", ".spec.resources.gpusPerReplica", "integer", priority=1),
    _column("Replicas", ".spec.resources.replicas", "integer", priority=1),
    _column("Mode", ".spec.placement.mode", priority=1),
    _column("Objective", ".spec.placement.objective", priority=1),
    _column("Energy (J)", ".status.placement.predictedEnergyJoules", "number", priority=1),
    _column("Duration (s)", ".status.placement.predictedDurationSeconds", "number", priority=1),
    _column("Savings (J)", ".status.placement.savingsJoules", "number", priority=1),
]


def _with_camel_twins(node: dict[str, Any], twins: dict[str, str]) -> None:
    """Each snake_case property of ``node`` also under its camelCase name (``kv_heads`` and ``kvHeads``):
    the API server prunes a name the schema lacks, and the operator takes either spelling."""
    props = node["properties"]
    for camel, snake in twins.items():
        if snake in props and camel not in props:
            described = props[snake].get("description", "")
            props[camel] = {**props[snake], "description": f"{described} (= {snake})".strip()}


def aijob_crd() -> dict[str, Any]:
    spec_schema = structural_schema(AIJobSpec)
    arch = spec_schema["properties"]["workload"]["properties"]["architecture"]
    _with_camel_twins(arch, camel_twins(ModelArchitecture))
    _with_camel_twins(arch["properties"]["cnn"], camel_twins(CNNSpec))
    spec_schema["description"] = "What to run and how to place it (contract section 2)."
    status_schema = structural_schema(AIJobStatus)
    status_schema["description"] = "Written by the operator."
    # kopf may record handler progress in status on old clusters; keep unknown status fields.
    status_schema["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An AI job placed on the GPU type that minimises its predicted energy.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = (
        "# Generated by `python -m energaizer_operator.crd` from energaizer_operator.models. Do not edit.\n"
    )
    return header + yaml.safe_dump(aijob_crd(), sort_keys=False, width=110)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
