"""kmock 0.8 workarounds (see ../shared/research/feasibility.md, Q2), kept in one place.

* ``RealisticEmulator``: resourceVersion/uid/generation/creationTimestamp, watch-from-resourceVersion,
  kopf's finalizer JSON-Patch, label selectors and list kinds.
* a bounded request log (kmock scans it on every request), with ``journal`` for assertions.
* ``metadata.generateName`` honoured (kopf posts Events with it).
* strict like a real API server: 400 Bad Request for a body with ``NaN``/``Infinity`` (not JSON),
  409 Conflict for a PUT/PATCH whose body carries a stale ``metadata.resourceVersion`` (optimistic
  concurrency, as the Lease-based leader election relies on), and 422 Invalid for a PATCH whose body's
  ``metadata.uid`` is not the stored object's (deleted and created again under its name: "metadata.uid:
  field is immutable"; a custom resource's ``/status`` PATCH ignores the uid, as the API server does).
* a deletion takes a resourceVersion of its own (the ``DELETED`` watch event carries it), as on a real API
  server: a watch from a version newer than the object's last change sees the deletion.
* strict like a real API server for the AIJob custom resource (the CRD the chart installs,
  ``charts/energaizer/crds``): every write is pruned of the fields its ``openAPIV3Schema`` lacks (silently,
  as the API server does; each pruned path is noted in ``pruned``), then validated against it (422
  Invalid with the API server's ``Status`` body and ``details.causes``). The status subresource: a
  POST drops ``status``, a PUT/PATCH of the AIJob keeps the stored ``status``, a PATCH of ``/status``
  changes nothing but ``status``; ``metadata.generation`` grows only when something outside
  ``metadata`` and ``status`` changes.
* strict for built-in objects (Jobs, Events, Leases, Nodes ...): a created or patched object must
  validate against the Kubernetes OpenAPI schemas of the oldest and newest versions the chart supports
  (``kubernetes-validate``'s strict schemas: a field unknown to either is refused with 422, where a real
  server drops it or, with ``fieldValidation=Strict``, refuses it).
* ``parse_namespaces``: kmock 0.8 answers ``GET /api/v1/namespaces`` with HTTP 500; kopf's namespaced
  mode needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import functools
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import jsonpatch
import jsonschema
import kmock
import yaml
from kmock._internal import dicts, enums
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


AIJOB_CRD = (
    Path(__file__).resolve().parents[2] / "charts" / "energaizer" / "crds" / "aijobs.energaizer.io.yaml"
)
# kubeVersion ">=1.25.0-0" in charts/energaizer/Chart.yaml; the newest schemas kubernetes-validate ships
KUBE_VERSIONS = ("1.25", "latest")
AIJOB_RESOURCE = kmock.resource("energaizer.io", "v1alpha1", "aijobs")


@functools.cache
def aijob_schema() -> tuple[dict[str, Any], jsonschema.Draft7Validator]:
    """The AIJob's structural schema (for pruning) and its compiled validator (once per process)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
    from crd_jsonschema import crd_validator

    crd = yaml.safe_load(AIJOB_CRD.read_text())
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"], crd_validator(crd, version["name"], strict=False)


@functools.cache
def _aijob_validator(path: tuple[str, ...], shallow: bool) -> jsonschema.Draft7Validator:
    """The validator of the AIJob schema's node at ``path`` (compiled once); ``shallow``: without the
    node's properties (its type, required fields ... only)."""
    root = aijob_schema()[1]
    node = root.schema
    for key in path:
        node = node["properties"][key]
    if shallow:
        node = {k: v for k, v in node.items() if k != "properties"}
    return root.evolve(schema=node)


def aijob_errors(
    new: Any, old: Any, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], jsonschema.ValidationError]]:
    """Schema errors of an AIJob write, checking only what changed from ``old`` (None: a create), as the
    API server's validation ratcheting does; an object written through the mock was valid when stored,
    so the answer is the same as validating the whole object, at a fraction of the cost."""
    node = _aijob_validator(path, False).schema
    if old is None or not isinstance(new, dict) or not isinstance(old, dict) or "properties" not in node:
        return [(path, e) for e in _aijob_validator(path, False).iter_errors(new)]
    errors = [(path, e) for e in _aijob_validator(path, True).iter_errors(new)]
    for key, value in new.items():
        if key in node["properties"] and (key not in old or old[key] != value):
            errors += aijob_errors(value, old.get(key), (*path, key))
    return errors


def prune(schema: dict[str, Any], value: Any, path: str = "", pruned: list[str] | None = None) -> list[str]:
    """Drop, in place, the fields a structural schema does not specify (the API server's pruning);
    returns the dotted paths dropped. ``x-kubernetes-preserve-unknown-fields`` keeps a node's unknown
    fields, but the fields it does specify are pruned inside as usual."""
    pruned = [] if pruned is None else pruned
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        for key in list(value):
            where = f"{path}.{key}" if path else key
            if props is not None and key in props:
                prune(props[key], value[key], where, pruned)
            elif isinstance(extra, dict):
                prune(extra, value[key], where, pruned)
            elif not preserve:
                del value[key]
                pruned.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            prune(schema["items"], item, f"{path}[{i}]", pruned)
    return pruned


def _invalid(
    kind: str,
    group: str,
    name: str,
    errors: list[tuple[tuple[str, ...], jsonschema.ValidationError]],
    where: str = "",
) -> KubernetesError:
    """The API server's 422: ``<Kind>.<group> "<name>" is invalid: <field>: <why>, ...``; ``errors`` are
    (the path of the instance validated, an error in it)."""
    causes = []
    for prefix, e in sorted(errors, key=lambda pe: [*pe[0], *map(str, pe[1].absolute_path)]):
        parts = [*prefix, *e.absolute_path]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
        if e.validator == "required" and isinstance(e.instance, dict):
            for missing in [k for k in e.validator_value if k not in e.instance]:
                at = f"{field}.{missing}" if field else missing
                causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": at})
        else:
            causes.append(
                {"reason": "FieldValueInvalid", "message": f"Invalid value: {e.message}", "field": field}
            )
    causes = [dict(c) for c in dict.fromkeys(tuple(c.items()) for c in causes)]  # one per field and why
    qualified = f"{kind}.{group}" if group else kind
    message = f'{qualified} "{name}" is invalid{where}: ' + ", ".join(
        f"{c['field']}: {c['message']}" for c in causes
    )
    return KubernetesError(
        status=422,
        reason="Invalid",
        message=message,
        details={"name": name, "group": group, "kind": kind, "causes": causes},
    )


@functools.cache
def builtin_validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator | None:
    """kubernetes-validate's strict schema for a built-in kind at a Kubernetes version, compiled once;
    None when it has none (a kind that version does not serve)."""
    import re

    import kubernetes_validate
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = utils.major_minor(kubernetes_validate.latest_version()) if version == "latest" else version
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = _builtin_definitions(folder, version)
    registry = definitions @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _builtin_definitions(folder: str, version: str) -> Any:
    from kubernetes_validate import utils
    from referencing import Resource

    return Resource.from_contents(utils.schema_contents(f"{folder}/_definitions.json", version))


def check_builtin(obj: dict[str, Any]) -> None:
    """422 Invalid unless ``obj`` validates at every version in ``KUBE_VERSIONS`` that serves its kind."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return
    for version in KUBE_VERSIONS:
        validator = builtin_validator(version, kind, api_version)
        errors = list(validator.iter_errors(obj)) if validator is not None else []
        if errors:
            group = api_version.rpartition("/")[0]
            name = (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get(
                "generateName", ""
            )
            raise _invalid(
                kind, group, name, [((), e) for e in errors], f" (the Kubernetes {version} schema)"
            )


def _patched(old: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``old`` after a merge patch (a dict) or a JSON patch (a list), as a new object; a JSON patch
    that does not apply (a failed ``test``) is the API server's 422."""
    if isinstance(patch, list):
        try:
            return jsonpatch.apply_patch(copy.deepcopy(old), patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise KubernetesError(status=422, reason="Invalid", message=str(exc)) from None
    if isinstance(patch, dict):
        return copy.deepcopy(dict(dicts.patch_dict(old, patch)))
    raise KubernetesError(
        status=400, reason="BadRequest", message="the patch is neither an object nor a list"
    )


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


@dataclass(frozen=True)
class Seen:
    """A light record of one request (kmock's own request log is trimmed, see below)."""

    method: str
    path: str
    params: dict
    name: str | None


class RealisticEmulator(kmock.KubernetesEmulator):
    journal: list[Seen]

    @contextlib.contextmanager
    def holding(self, request):
        """Keep ``request`` in kmock's request log until it is answered (see :meth:`_handle`)."""
        if not hasattr(self, "_held"):
            self._held: dict[int, int] = {}
        key = id(request)
        self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

    async def _handle(self, request):
        # kmock 0.8 matches every request against its whole request log (each reaction filters every
        # logged request to find this one: O(n) per request, O(n^2) for a burst) and answers a request
        # it cannot find there with a 500 ("no reaction matching the request"). So the log holds exactly
        # the requests not answered yet (a FaultyEmulator delay, an open watch); a light journal keeps
        # every request for assertions.
        with self.holding(request):
            self._requests[:] = [r for r in self._requests if id(r) in self._held]
            return await self._handle_held(request)

    async def _handle_held(self, request):
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
            self._check_uid(request)  # after the resourceVersion, as the API server checks them
        if request.resource is not None and request.action == enums.action.DELETE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects and not self.objects[key].deleted:
                # the deletion is a change of its own: its watch event carries a new resourceVersion (kmock
                # sent the object's last one, which a watch from a later version dropped as already seen)
                self.objects[key].patch({"metadata": {"resourceVersion": self._next_rv()}})
        if request.resource == AIJOB_RESOURCE and request.action in (
            enums.action.CREATE,
            enums.action.UPDATE,
        ):
            self._write_aijob(request)
            return await super()._handle(request)
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
        if (
            request.resource is not None
            and request.action == enums.action.CREATE
            and isinstance(request.data, dict)
        ):
            check_builtin(request.data)
        elif request.resource is not None and request.action == enums.action.UPDATE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects and not self.objects[key].deleted:
                check_builtin(_patched(self.objects[key].raw, request.data))
        return await super()._handle(request)

    def _check_uid(self, request) -> None:
        """A PATCH whose body carries a ``metadata.uid`` other than the stored object's (it was deleted and
        created again under its name since the writer read it) is refused as by a real API server: 422
        Invalid, ``metadata.uid`` is immutable (``rest.BeforeUpdate``). A PATCH of a custom resource's
        ``/status`` keeps the stored metadata whatever the body says (the status strategy copies the stored
        object), so a uid there is no precondition and nothing is refused. (A PUT, whose uid is a storage
        precondition, 409 "Precondition failed: UID in precondition", kmock 0.8 does not serve.)"""
        wanted = (request.data.get("metadata") or {}).get("uid")
        key = (request.resource, request.namespace, request.name)
        if not wanted or key not in self.objects or self.objects[key].deleted:
            return
        if str(wanted) == str(self.objects[key].get("metadata", {}).get("uid", "")):
            return
        if request.resource == AIJOB_RESOURCE and request.subresource == "status":
            return
        res = request.resource
        info = self.resources[res] if res in self.resources else None  # noqa: SIM401 (not a dict)
        kind = info.kind if info and info.kind else res.plural.capitalize()
        qualified = f"{kind}.{res.group}" if res.group else kind
        why = f'Invalid value: "{wanted}": field is immutable'
        raise KubernetesError(
            status=422,
            reason="Invalid",
            message=f'{qualified} "{request.name}" is invalid: metadata.uid: {why}',
            details={
                "name": request.name,
                "group": res.group,
                "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": why, "field": "metadata.uid"}],
            },
        )

    def _next_rv(self) -> str:
        self._rv = getattr(self, "_rv", 0) + 1
        return str(self._rv)

    def _write_aijob(self, request) -> None:
        """The API server's handling of an AIJob write (see the module docstring): ``request.data``
        becomes the stored object (a create body, or a JSON patch replacing the whole object)."""
        if not hasattr(self, "pruned"):
            self.pruned = []
        schema = aijob_schema()[0]
        if request.action == enums.action.CREATE:
            if not isinstance(request.data, dict):
                raise KubernetesError(status=400, reason="BadRequest", message="the body is not an object")
            final = request.data
            final.pop("status", None)  # the status subresource: a create sets no status
            md = final.setdefault("metadata", {})
            if not md.get("name") and md.get("generateName"):
                md["name"] = md["generateName"] + uuid.uuid4().hex[:8]
            md.update(
                resourceVersion=self._next_rv(),
                uid=str(uuid.uuid4()),
                generation=1,
                creationTimestamp=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        else:
            key = (request.resource, request.namespace, request.name)
            if not request.name or key not in self.objects or self.objects[key].deleted:
                return  # kmock answers 404
            old = self.objects[key].raw
            new = _patched(old, request.data)
            if request.subresource == "status":  # nothing but status changes
                final = copy.deepcopy(old)
                final.pop("status", None)
                if "status" in new:
                    final["status"] = new["status"]
            else:  # status does not change; neither does what the server owns in metadata
                final = new
                final.pop("status", None)
                if "status" in old:
                    final["status"] = copy.deepcopy(old["status"])
                md = final.setdefault("metadata", {})
                for owned in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
                    md.pop(owned, None)
                    if owned in old.get("metadata", {}):
                        md[owned] = old["metadata"][owned]
            md = final.setdefault("metadata", {})
            md["resourceVersion"] = self._next_rv()
            if _spec_part(final) != _spec_part(old):
                md["generation"] = int(old.get("metadata", {}).get("generation", 1)) + 1
        metadata = final.pop("metadata", None)
        self.pruned += prune(schema, final)
        errors = aijob_errors(final, None if request.action == enums.action.CREATE else old)
        final["metadata"] = metadata
        if errors:
            raise _invalid("AIJob", AIJOB_RESOURCE.group, (metadata or {}).get("name", ""), errors)
        if request.action == enums.action.UPDATE:
            # kmock stores what the request carries (its Request is frozen: set the field underneath)
            object.__setattr__(request, "data", [{"op": "replace", "path": "", "value": final}])

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
            if event.get("type") == _END:  # FaultyEmulator.end_watches
                yield event
                continue
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


# ------------------------------------------------------------------------------------ API faults


@dataclass
class Fault:
    """One kind of API-server fault, for the operator's requests only (``kopf/...`` and the official
    client's ``OpenAPI-Generator/...`` User-Agent; the test's own requests always pass).

    A request matches when its method is in ``methods`` (empty: any), ``path`` is found in its path
    (a regular expression) and it is (``watch=True``) or is not (``watch=False``) a watch. The first
    ``times`` matches (None: every match) are answered with ``status`` (a Kubernetes ``Status`` body,
    ``Retry-After: retry_after`` when given), delayed by ``delay_s`` (or held until the event ``until`` is
    set) first, or cut (``abort``: the
    connection closed with no response, as a server that died), or never answered (``hang``: a
    connection to a server that died without a reset); with ``after``, the request is carried out
    first (the client cannot tell that its write landed). ``agent``: only requests whose User-Agent
    starts with it (``OpenAPI-Generator/``: the operator's own calls, not kopf's)."""

    path: str = ""
    methods: frozenset[str] = frozenset()
    watch: bool | None = None
    status: int | None = None
    retry_after: int | None = None
    delay_s: float = 0.0
    until: asyncio.Event | None = None  # held until the test sets it (a delay that ends on a cue)
    abort: bool = False
    after: bool = False  # the request is carried out, then the fault answered (a write that landed)
    hang: bool = False  # never answered (a connection to a server that died: no reset, no answer)
    times: int | None = None
    agent: str = ""
    hits: int = 0

    def matches(self, method: str, path: str, watch: bool, agent: str = "") -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if not agent.startswith(self.agent):
            return False
        if self.methods and method not in self.methods:
            return False
        if self.watch is not None and watch != self.watch:
            return False
        return re.search(self.path, path) is not None


_REASONS = {
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class FaultyEmulator(RealisticEmulator):
    """:class:`RealisticEmulator` with injectable faults: ``faults`` (a list of :class:`Fault`, the first
    match applies), ``end_watches(gone=...)`` (every open watch stream ends now, with an ``ERROR`` event
    ``410 Gone`` (expired resourceVersion) when ``gone``), and ``set_outage`` (an API server gone for
    a while: every operator request cut, or left without an answer)."""

    faults: list[Fault]
    outage: bool | str
    injected: list[tuple[str, str, str]]  # (method, path, what) of every fault applied
    received: list[tuple[float, str, str, str]]  # (time.monotonic(), method, path, User-Agent) of each

    def _faults_init(self) -> None:
        if not hasattr(self, "faults"):
            self.faults, self.outage, self.injected, self._watch_epoch, self._gone = [], False, [], 0, False
            self.received = []

    def received_times(self, method: str, path: str, agent: str = "") -> list[float]:
        """When the operator's requests ``method`` to exactly ``path`` arrived (monotonic seconds), of a
        User-Agent that starts with ``agent``."""
        self._faults_init()
        return [t for t, m, p, a in self.received if m == method and p == path and a.startswith(agent)]

    @staticmethod
    def _operator(request) -> bool:
        agent = str((request.headers or {}).get("User-Agent", ""))
        return agent.startswith(("kopf/", "OpenAPI-Generator/"))

    async def _handle(self, request):
        with self.holding(request):  # kept in kmock's log while a fault delays it
            return await self._handle_faults(request)

    async def _handle_faults(self, request):
        self._faults_init()
        if self._operator(request):
            method = str(request.method).upper().rsplit(".", 1)[-1]
            path = request.url.path
            watch = request.params.get("watch") == "true"
            agent = str((request.headers or {}).get("User-Agent", ""))
            self.received.append((time.monotonic(), method, path, agent))
            if self.outage:
                if self.outage == "hang":
                    return await self._hang(method, path)
                return self._cut(request, method, path, "outage")
            for fault in self.faults:
                if fault.matches(method, path, watch, agent):
                    fault.hits += 1
                    if fault.delay_s:
                        await asyncio.sleep(fault.delay_s)
                    if fault.until is not None:
                        await fault.until.wait()
                    if fault.after:
                        await super()._handle(request)
                    if fault.hang:
                        return await self._hang(method, path)
                    if fault.abort:
                        return self._cut(request, method, path, "abort")
                    if fault.status is not None:
                        self.injected.append((method, path, str(fault.status)))
                        return self._status(fault)
                    self.injected.append((method, path, f"delay {fault.delay_s}"))
                    break
        return await super()._handle(request)

    async def _hang(self, method: str, path: str):
        self.injected.append((method, path, "hang"))
        await asyncio.Event().wait()  # until the test's server shuts down

    def _cut(self, request, method: str, path: str, what: str):
        self.injected.append((method, path, what))
        transport = request._raw_request.transport if request._raw_request is not None else None
        if transport is not None:
            transport.abort()
        return aiohttp.web.Response(status=503)  # never reaches the client: the connection is gone

    @staticmethod
    def _status(fault: Fault):
        code = fault.status or 500
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": _REASONS.get(code, "InternalError"),
            "message": f"injected fault {code}",
            "code": code,
        }
        if fault.retry_after is not None:
            body["details"] = {"retryAfterSeconds": fault.retry_after}
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return aiohttp.web.json_response(body, status=code, headers=headers)

    async def end_watches(self, *, gone: bool = False) -> None:
        """Every watch stream open now ends (after an ``ERROR`` 410 event when ``gone``)."""
        self._faults_init()
        self._watch_epoch += 1
        self._gone = gone
        for bus in list(self._buses.values()):
            await bus.put({"type": _END})

    async def set_outage(self, on: bool, *, hang: bool = False) -> None:
        """From now on every operator request is cut (its connection closed, and the watches end), or
        with ``hang``, never answered (the open watches go quiet), until ``set_outage(False)``; the
        requests left hanging stay so (their connections are dead)."""
        self._faults_init()
        self.outage = ("hang" if hang else True) if on else False
        if on and not hang:
            await self.end_watches()

    def expire_versions(self) -> None:
        """Every resourceVersion up to now is compacted: a watch from an older one gets ``410 Gone`` at
        once (as a real API server after an etcd compaction), and its client must list again."""
        self._faults_init()
        self._expired_below = getattr(self, "_rv", 0)

    async def _serve_watch(self, request):
        self._faults_init()
        epoch = self._watch_epoch
        since = request.params.get("resourceVersion", "")
        if since.isdigit() and int(since) < getattr(self, "_expired_below", 0):
            self.injected.append(("GET", request.url.path, "watch 410"))
            yield b""
            yield _GONE
            return
        async for item in super()._serve_watch(request):
            if isinstance(item, dict) and item.get("type") == _END:
                if self._watch_epoch == epoch:
                    continue  # an end meant for the streams before this one
                self.injected.append(("GET", request.url.path, "watch 410" if self._gone else "watch end"))
                if self._gone:
                    yield _GONE
                return
            yield item


_END = "__kmock_support_end__"
_GONE = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Expired",
        "message": "too old resource version",
        "code": 410,
    },
}
