"""kmock 0.8 workarounds (see ../shared/research/feasibility.md, Q2), kept in one place.

* ``RealisticEmulator``: resourceVersion/uid/generation/creationTimestamp, watch-from-resourceVersion,
  kopf's finalizer JSON-Patch, label selectors and list kinds.
* a bounded request log (kmock scans it on every request), with ``journal`` for assertions.
* ``metadata.generateName`` honoured (kopf posts Events with it).
* strict like a real API server: 400 Bad Request for a body with ``NaN``/``Infinity`` (not JSON), and
  409 Conflict for a PUT/PATCH whose body carries a stale ``metadata.resourceVersion`` (optimistic
  concurrency, as the Lease-based leader election relies on).
* ``parse_namespaces``: kmock 0.8 answers ``GET /api/v1/namespaces`` with HTTP 500; kopf's namespaced
  mode needs it.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass

import kmock
from kmock._internal import enums
from kmock._internal import parsing as _kp
from kmock._internal.k8s import KubernetesError


def _match(labels: dict, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _check_json(body: bytes) -> None:
    """A real API server rejects NaN/Infinity (Go's encoding/json): so does the mock."""
    if not body:
        return
    try:
        json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        raise KubernetesError(status=400, reason="BadRequest", message=f"invalid JSON body: {exc}") from None


@dataclass(frozen=True)
class Seen:
    """A light record of one request (kmock's own request log is trimmed, see below)."""

    method: str
    path: str
    params: dict
    name: str | None


class RealisticEmulator(kmock.KubernetesEmulator):
    journal: list[Seen]
    KEEP_REQUESTS = 8

    async def _handle(self, request):
        # kmock 0.8 matches every request against its whole request log (O(n) per request, O(n^2)
        # for a burst): keep only the latest requests there, and a light journal for assertions.
        if not hasattr(self, "journal"):
            self.journal = []
        data = request.data if isinstance(request.data, dict) else {}
        self.journal.append(
            Seen(
                str(request.method),
                request.url.path,
                dict(request.params),
                (data.get("metadata") or {}).get("name"),
            )
        )
        if len(self._requests) > 2 * self.KEEP_REQUESTS:
            del self._requests[: -self.KEEP_REQUESTS]
        if str(request.method).upper().rsplit(".", 1)[-1] in ("POST", "PUT", "PATCH"):
            _check_json(request.body)
        if (
            request.resource is not None
            and isinstance(request.data, dict)
            and request.action == enums.action.UPDATE
            and request.name
        ):
            wanted = (request.data.get("metadata") or {}).get("resourceVersion")
            key = (request.resource, request.namespace, request.name)
            if wanted and key in self.objects and not self.objects[key].deleted:
                current = str(self.objects[key].get("metadata", {}).get("resourceVersion", ""))
                if str(wanted) != current:
                    raise KubernetesError(
                        status=409,
                        reason="Conflict",
                        message=f"the object has been modified (resourceVersion {wanted} != {current})",
                    )
        if (
            request.resource is not None
            and isinstance(request.data, list)
            and request.action == enums.action.UPDATE
        ):
            self._rv = getattr(self, "_rv", 0) + 1
            request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": str(self._rv)})
        elif (
            request.resource is not None
            and isinstance(request.data, dict)
            and request.action in (enums.action.CREATE, enums.action.UPDATE)
        ):
            self._rv = getattr(self, "_rv", 0) + 1
            md = request.data.setdefault("metadata", {})
            md["resourceVersion"] = str(self._rv)
            if request.action == enums.action.CREATE:
                if not md.get("name") and md.get("generateName"):  # kmock 0.8 ignores generateName
                    md["name"] = md["generateName"] + uuid.uuid4().hex[:8]
                md.setdefault("uid", str(uuid.uuid4()))
                md.setdefault(
                    "creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                )
                md.setdefault("generation", 1)
            elif request.name and "spec" in request.data and request.subresource is None:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    md["generation"] = self.objects[key].get("metadata", {}).get("generation", 1) + 1
        return await super()._handle(request)

    async def _serve_list(self, request):
        result = await super()._serve_list(request)
        result["metadata"]["resourceVersion"] = str(getattr(self, "_rv", 0))
        res = request.resource
        info = self.resources[res] if res in self.resources else None  # noqa: SIM401 (not a dict)
        result["kind"] = f"{(info.kind if info and info.kind else res.plural.capitalize())}List"
        result["apiVersion"] = f"{res.group}/{res.version}" if res.group else res.version
        if sel := request.params.get("labelSelector"):
            result["items"] = [
                o for o in result["items"] if _match(o.get("metadata", {}).get("labels") or {}, sel)
            ]
        return result

    async def _serve_watch(self, request):
        rv = request.params.get("resourceVersion", "")
        if not rv.isdigit():
            async for item in super()._serve_watch(request):
                yield item
            return
        since, check, seen = int(rv), self._KubernetesEmulator__check, set()
        yield b""
        for (res, ns, name), obj in list(self.objects.items()):
            if check(request, res, ns, name, strict=False) and not obj.deleted:
                orv = int(obj.get("metadata", {}).get("resourceVersion", 0) or 0)
                if orv > since:
                    seen.add((ns, name, orv))
                    yield {"type": "MODIFIED", "object": obj.raw}
        async for event in self._buses[request.resource]:
            md = event.get("object", {}).get("metadata", {})
            orv = int(md.get("resourceVersion", 0) or 0)
            if (orv and orv <= since) or (md.get("namespace"), md.get("name"), orv) in seen:
                continue
            if check(request, request.resource, md.get("namespace"), md.get("name"), strict=False):
                yield event


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    """kmock's bundled built-in resources (nodes, pods, jobs, events, leases ...) plus the AIJob CRD."""
    emulator.resources.load_bundled()
    emulator.resources["energaizer.io/v1alpha1/aijobs"] = kmock.ResourceInfo(
        kind="AIJob",
        singular="aijob",
        namespaced=True,
        subresources={"status"},
        verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
    )


_orig_parse_path = _kp.parse_path


def parse_namespaces(path):
    p = path.strip("/").split("/")
    if p[:3] == ["api", "v1", "namespaces"] and (
        len(p) <= 4 or (len(p) == 5 and p[4] in ("status", "finalize"))
    ):
        return _kp.ParsedPath(
            "", "v1", "namespaces", None, p[3] if len(p) > 3 else None, p[4] if len(p) > 4 else None
        )
    return _orig_parse_path(path)
