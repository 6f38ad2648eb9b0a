"""The few Kubernetes API calls the operator makes itself (kopf makes the rest), via the official client.

Credentials are the same as kopf's default login: in-cluster service account, else the current
kubeconfig (``KUBECONFIG``). Calls are synchronous; async code runs them with ``asyncio.to_thread``.
Only PATCH (merge patch) is used for updates. Every call has a timeout (``timeout``, default
:data:`REQUEST_TIMEOUT_SECONDS` or what :func:`set_request_timeout` set; urllib3's ``TimeoutError`` when it passes): without one, a request
on a connection to an API server that died without resetting it waits for ever, holding a worker
thread, a write slot of a loop, or the Lease renewal (the operator then stands by for good). Each
request left unanswered is sent once (no urllib3 retries): it is not sent again, so no call outlasts
its timeout; the callers retry on their own schedule. One exception: a request whose connection the
server closed or reset before any byte of an answer (a pooled keep-alive connection that the API server
or a load balancer closed as the request arrived, or dropped while idle) is sent once more, on a new
connection, within the same timeout (:func:`connection_lost`): a server closing an idle connection has
not handled a request arriving on it, and a duplicate would be harmless anyway (merge patches are
idempotent; a conditional write or a create sent twice answers 409, which its caller handles). A
connection lost in the middle of an answer is not sent again (the server handled the request).

A ``429`` or ``503`` answer with ``Retry-After`` (API Priority and Fairness, an overloaded server) is
honoured per request target (method and path), capped at :data:`RETRY_AFTER_MAX_SECONDS`: the call waits
and sends again while that fits in its timeout; else it raises, and until then every later call to that
target (the loops' retries on their own schedule included) waits for it or, when even that does not fit
in its timeout, raises at once without sending. Only the timeout bounds a call, waits included.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from energaizer_operator import GROUP, PLURAL, VERSION

logger = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 30.0  # a whole API call (connect, send, answer), unless set_request_timeout
_request_timeout_seconds = REQUEST_TIMEOUT_SECONDS
RETRY_AFTER_MAX_SECONDS = 60.0  # a longer Retry-After is taken as this (a server asking for hours)
RETRY_AFTER_MIN_SECONDS = 0.5  # the least wait before a call sends again (after "Retry-After: 0")
RETRY_AFTER_STATUSES = frozenset({429, 503})
T = TypeVar("T")


def set_request_timeout(seconds: float) -> None:
    """The timeout of every call that names none (the operator's ``ENERGAIZER_API_TIMEOUT_SECONDS``)."""
    global _request_timeout_seconds
    _request_timeout_seconds = seconds


def request_timeout() -> float:
    """The timeout of a call that names none: :data:`REQUEST_TIMEOUT_SECONDS` or what
    :func:`set_request_timeout` set."""
    return _request_timeout_seconds


__all__ = [
    "REQUEST_TIMEOUT_SECONDS",
    "ApiException",
    "NotSent",
    "api_client",
    "connection_lost",
    "create_job",
    "create_lease",
    "current_namespace",
    "list_uids",
    "load_config",
    "log_failure",
    "patch_aijob",
    "patch_aijob_status",
    "patch_job",
    "patch_lease",
    "read_aijob",
    "read_job",
    "read_lease",
    "replaced",
    "request_timeout",
    "retry_after_seconds",
    "set_request_timeout",
]

LIST_PAGE_SIZE = 500  # objects per page of a list (limit/continue)
# metadata only (PartialObjectMetadataList): a list of uids need not carry the pods' specs
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class NoClusterConfigError(RuntimeError):
    """Neither an in-cluster service account nor a usable kubeconfig."""


def load_config() -> None:
    """Load credentials (in-cluster, else kubeconfig); ``NoClusterConfigError`` with one line if none."""
    try:
        kubernetes.config.load_incluster_config()
        return
    except kubernetes.config.ConfigException:
        pass
    try:
        kubernetes.config.load_kube_config()
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise NoClusterConfigError(
            f"no in-cluster service account and no usable kubeconfig (KUBECONFIG or ~/.kube/config): {detail}"
        ) from None


def current_namespace() -> str:
    """The service account's namespace in a pod, else the kubeconfig context's, else ``default``."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        pass
    try:
        _contexts, active = kubernetes.config.list_kube_config_contexts()
        return str((active or {}).get("context", {}).get("namespace") or "default")
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError):
        return "default"


@functools.lru_cache(maxsize=1)
def api_client() -> kubernetes.client.ApiClient:
    load_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32  # parallel writes from worker threads share the pool
    # TCP keepalive as client-go's (probes after 30 s idle, 15 s apart, 9 of them): a NAT or load balancer
    # that drops idle connections silently keeps probed ones, and a connection that died anyway is reset
    # by the kernel, so urllib3 replaces it before a request instead of the request waiting out its timeout
    configuration.keep_alive = True
    # no urllib3 retries: its default (3 retries) sent a GET that got no answer again after its timeout,
    # so an unanswered read took 4 timeouts (a Lease renewal 8 s for its 2 s); and its read counter cannot
    # tell a timeout from a connection the server closed unanswered. _call sends again after the latter
    # only (connection_lost); the callers retry the rest on their own schedule
    configuration.retries = urllib3.Retry(0)
    return kubernetes.client.ApiClient(configuration)


def _aijob_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def _lease_path(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def _plain(obj: Any) -> dict[str, Any]:
    return api_client().sanitize_for_serialization(obj)


def retry_after_seconds(exc: ApiException, now: float | None = None) -> float | None:
    """How long a ``429``/``503`` answer asked to wait (its ``Retry-After``: seconds or an HTTP date),
    at most :data:`RETRY_AFTER_MAX_SECONDS`; ``None`` for another status or no usable header."""
    if exc.status not in RETRY_AFTER_STATUSES:
        return None
    headers: Mapping[str, Any] = exc.headers or {}
    value = next((str(v).strip() for k, v in headers.items() if str(k).lower() == "retry-after"), "")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_SECONDS)


class NotSent(ApiException):
    """A call refused without sending: its target's last ``Retry-After`` has not passed and waiting it out
    does not fit in the call's timeout (status 429, ``Retry-After``: the wait left)."""


def log_failure(log: logging.Logger, exc: BaseException, message: str, *args: Any) -> None:
    """Log a loop's failed call (``message % args``, then the loop retries): what the API answers in
    ordinary operation is one line without a traceback: ``404`` (the object was deleted meanwhile, e.g.
    an AIJob deleted while its status write was on its way) at INFO, and a ``429``/``503`` with
    ``Retry-After`` or a call refused unsent (:class:`NotSent`) at WARNING; anything else at ERROR with
    its traceback."""
    if isinstance(exc, ApiException):
        if exc.status == 404:
            log.info(message + " (HTTP 404: deleted meanwhile)", *args)
            return
        if isinstance(exc, NotSent) or retry_after_seconds(exc) is not None:
            reason = " ".join(str(exc.reason or "").split())
            log.warning(message + " (HTTP %s: %s)", *args, exc.status, reason)
            return
    log.error(message, *args, exc_info=exc)


class _NotBefore:
    """Per request target (``"PATCH /apis/.../status"``): the monotonic time before which it must not be
    sent again, from the last ``Retry-After`` it answered. Shared by the worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def get(self, target: str) -> float:
        with self._lock:
            return self._until.get(target, 0.0)

    def defer(self, target: str, until: float) -> None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, t in self._until.items() if t <= now]:  # bounded by the targets deferred
                del self._until[key]
            self._until[target] = max(self._until.get(target, 0.0), until)

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


_not_before = _NotBefore()

# what the socket raised when the server closed (RemoteDisconnected: "Remote end closed connection
# without response", a ConnectionResetError) or reset the connection before any byte of an answer
_LOST = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def connection_lost(exc: BaseException) -> bool:
    """Whether a request failed because its connection was closed or reset before any answer: urllib3's
    ``ProtocolError("Connection aborted.", <socket error>)``, raised as it is for a write and inside a
    ``MaxRetryError`` for a read. Not a timeout (``ReadTimeoutError``: the request may be in progress), a
    refused or failed connect (nothing to send again to), nor a break in the middle of an answer's body."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # "Connection aborted.": urlopen's, before an answer was read; "Connection broken: ..." is the body's
    if not isinstance(exc, urllib3.exceptions.ProtocolError) or exc.args[:1] != ("Connection aborted.",):
        return False
    return any(isinstance(arg, _LOST) for arg in exc.args[1:])


def replaced(exc: BaseException) -> bool:
    """Whether the API refused a patch because the object of that name is not the one the patch named by
    its ``metadata.uid`` (deleted and created again under its name since): 422 Invalid on the field
    ``metadata.uid``, which is immutable."""
    if not isinstance(exc, ApiException) or exc.status != 422:
        return False
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return False
    causes = ((body.get("details") or {}).get("causes") or []) if isinstance(body, dict) else []
    return any(isinstance(c, dict) and c.get("field") == "metadata.uid" for c in causes)


def _call(target: str, timeout: float | None, send: Callable[[float], T]) -> T:
    """``send(seconds left)`` within ``timeout`` (the API timeout by default), honouring ``Retry-After``
    (module docstring): waits before sending while the target's last ``Retry-After`` has not passed, and
    sends again after a ``429``/``503`` that asks for a wait that fits in what is left, and once after a
    connection lost before any answer (:func:`connection_lost`), on a new one."""
    deadline = time.monotonic() + (timeout or _request_timeout_seconds)
    resent = False
    while True:
        wait = _not_before.get(target) - time.monotonic()
        if wait > 0:
            if time.monotonic() + wait >= deadline:
                exc = NotSent(
                    status=429,
                    reason=f"not sent: {target} asked to wait {wait:.1f} s more (Retry-After), beyond the API timeout",
                )
                exc.headers = {"Retry-After": f"{wait:.3f}"}
                raise exc
            time.sleep(wait)
        try:
            return send(deadline - time.monotonic())
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError) as exc:
            # urllib3 closed that connection and freed its slot: the next request opens a new one (or takes
            # one a parallel call just put back). Once: a server that drops every request is not hammered
            if resent or not connection_lost(exc) or deadline - time.monotonic() <= 0:
                raise
            resent = True
            logger.info(
                "%s: connection closed before an answer (%s); sending again on a new one", target, exc
            )
        except ApiException as exc:
            delay = retry_after_seconds(exc)
            if delay is None:
                raise
            delay = max(delay, RETRY_AFTER_MIN_SECONDS)  # "Retry-After: 0" again and again: not a busy loop
            _not_before.defer(target, time.monotonic() + delay)
            if time.monotonic() + delay >= deadline:
                raise


def patch_aijob(
    namespace: str, name: str, body: dict[str, Any], uid: str = "", timeout: float | None = None
) -> dict[str, Any]:
    """Merge-patch the AIJob ``name``; with ``uid``, only that AIJob: one deleted and created again under its
    name since (``kubectl delete``, then ``apply``) is another, and the API server refuses the patch
    (:func:`replaced`) instead of writing it there."""
    if uid:
        body = {**body, "metadata": {**(body.get("metadata") or {}), "uid": uid}}
    api = kubernetes.client.CustomObjectsApi(api_client())
    return _call(
        f"PATCH {_aijob_path(namespace, name)}",
        timeout,
        lambda left: api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH, _request_timeout=left
        ),
    )


def read_aijob(namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(api_client())
    return _call(
        f"GET {_aijob_path(namespace, name)}",
        timeout,
        lambda left: api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=left
        ),
    )


def patch_aijob_status(
    namespace: str,
    name: str,
    status: dict[str, Any],
    resource_version: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Merge-patch ``status``; with ``resource_version``, only if the AIJob has not changed since (409 if
    stale): a merge patch replaces the whole ``conditions`` list, so a write built on an old list must not
    land over a newer one."""
    body: dict[str, Any] = {"status": status}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    api = kubernetes.client.CustomObjectsApi(api_client())
    return _call(
        f"PATCH {_aijob_path(namespace, name)}/status",
        timeout,
        lambda left: api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH, _request_timeout=left
        ),
    )


def create_job(namespace: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(
        _call(
            f"POST /apis/batch/v1/namespaces/{namespace}/jobs",
            timeout,
            lambda left: api.create_namespaced_job(namespace, body, _request_timeout=left),
        )
    )


def read_job(namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(
        _call(
            f"GET /apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            timeout,
            lambda left: api.read_namespaced_job(name, namespace, _request_timeout=left),
        )
    )


def patch_job(
    namespace: str, name: str, body: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    """Merge-patch a Job (with ``metadata.resourceVersion`` in ``body``: only if it has not changed)."""
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(
        _call(
            f"PATCH /apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            timeout,
            lambda left: api.patch_namespaced_job(
                name, namespace, body, _content_type=MERGE_PATCH, _request_timeout=left
            ),
        )
    )


def read_lease(namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.CoordinationV1Api(api_client())
    return _plain(
        _call(
            f"GET {_lease_path(namespace)}/{name}",
            timeout,
            lambda left: api.read_namespaced_lease(name, namespace, _request_timeout=left),
        )
    )


def create_lease(namespace: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.CoordinationV1Api(api_client())
    return _plain(
        _call(
            f"POST {_lease_path(namespace)}",
            timeout,
            lambda left: api.create_namespaced_lease(namespace, body, _request_timeout=left),
        )
    )


def patch_lease(
    namespace: str, name: str, body: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    """Merge patch; a ``metadata.resourceVersion`` in ``body`` makes it conditional (409 if stale)."""
    api = kubernetes.client.CoordinationV1Api(api_client())
    return _plain(
        _call(
            f"PATCH {_lease_path(namespace)}/{name}",
            timeout,
            lambda left: api.patch_namespaced_lease(
                name, namespace, body, _content_type=MERGE_PATCH, _request_timeout=left
            ),
        )
    )


def _list_page(
    client: kubernetes.client.ApiClient,
    method: str,
    url: str,
    headers: Any,
    body: Any,
    post: Any,
    left: float,
) -> dict[str, Any]:
    response = client.call_api(
        method, url, header_params=headers, body=body, post_params=post, _request_timeout=left
    )
    if not 200 <= response.status < 300:
        exc = ApiException(status=response.status, reason=response.reason)
        exc.headers = response.getheaders()
        raise exc
    return json.loads(response.read())


def list_items(
    path: str,
    page_size: int = LIST_PAGE_SIZE,
    timeout: float | None = None,
    *,
    accept: str = "application/json",
    field_selector: str = "",
) -> Iterator[dict[str, Any]]:
    """The objects a collection ``path`` holds now, page by page (``limit``/``continue``), read from etcd
    (no ``resourceVersion``: never an older cache); ``accept`` = :data:`METADATA_LIST` for their
    metadata only. ``ApiException`` when a page fails (a ``continue`` token that expired meanwhile
    included: 410)."""
    client = api_client()
    token = ""
    while True:
        query: list[tuple[str, Any]] = [("limit", page_size)]
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if token:
            query.append(("continue", token))
        method, url, headers, body, post = client.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        page = _call(
            f"GET {path}", timeout, functools.partial(_list_page, client, method, url, headers, body, post)
        )
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def list_uids(path: str, page_size: int = LIST_PAGE_SIZE, timeout: float | None = None) -> set[str]:
    """The uids of the objects a collection ``path`` (``/api/v1/namespaces/ns/pods``, ``/api/v1/nodes``)
    holds now: a paged list of their metadata only (:func:`list_items`)."""
    return {
        uid
        for item in list_items(path, page_size, timeout, accept=METADATA_LIST)
        if (uid := (item.get("metadata") or {}).get("uid"))
    }
