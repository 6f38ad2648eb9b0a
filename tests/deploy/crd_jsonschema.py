"""Validate custom objects against a CRD's openAPIV3Schema with jsonschema (Draft 7).

The API server's structural schemas are OpenAPI 3.0 with Kubernetes extensions; this translates
what jsonschema does not know: ``nullable``, boolean ``exclusiveMinimum``/``exclusiveMaximum``,
``x-kubernetes-int-or-string`` and ``x-kubernetes-preserve-unknown-fields``. Unknown fields are
reported (``additionalProperties: false``) where the API server would silently prune them.
Not covered: CEL ``x-kubernetes-validations``, defaulting, list/map-type semantics.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema


def _walk(node: Any, strict: bool) -> Any:
    if not isinstance(node, dict):
        return node
    s = node
    for bound, strict_key in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if s.get(strict_key) is True:
            s[strict_key] = s.pop(bound)
        elif s.get(strict_key) is False:
            s.pop(strict_key)
    if s.pop("x-kubernetes-int-or-string", False):
        s.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if s.pop("nullable", False):
        if "type" in s:
            s["type"] = [s["type"], "null"]
        if "enum" in s:
            s["enum"] = [*s["enum"], None]
    preserve = s.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in s if k.startswith("x-kubernetes-")]:
        s.pop(key)
    for sub in s.get("properties", {}).values():
        _walk(sub, strict)
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            _walk(s[key], strict)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in s.get(key, []):
            _walk(sub, strict)
    if strict and s.get("type") == "object" and "properties" in s and not preserve:
        s.setdefault("additionalProperties", False)
    return s


def crd_validator(crd: dict[str, Any], version: str, *, strict: bool = True) -> jsonschema.Draft7Validator:
    served = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served, f"CRD {crd['metadata']['name']} has no version {version}"
    schema = _walk(copy.deepcopy(served[0]["schema"]["openAPIV3Schema"]), strict)
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.Draft7Validator, obj: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    )
