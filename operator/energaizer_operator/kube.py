"""The few Kubernetes API calls the operator makes itself (kopf makes the rest), via the official client.

Credentials are the same as kopf's default login: in-cluster service account, else the current
kubeconfig (``KUBECONFIG``). Calls are synchronous; async code runs them with ``asyncio.to_thread``.
Only PATCH (merge patch) is used for updates. Every call has a timeout (``timeout``, default
:data:`REQUEST_TIMEOUT_SECONDS` or what :func:`set_request_timeout` set; urllib3's ``TimeoutError`` when it passes): without one, a request
on a connection to an API server that died without resetting it waits for ever, holding a worker
thread, a write slot of a loop, or the Lease renewal (the operator then stands by for good).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from energaizer_operator import GROUP, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 30.0  # a whole API call (connect, send, answer), unless set_request_timeout
_request_timeout_seconds = REQUEST_TIMEOUT_SECONDS


def set_request_timeout(seconds: float) -> None:
    """The timeout of every call that names none (the operator's ``ENERGAIZER_API_TIMEOUT_SECONDS``)."""
    global _request_timeout_seconds
    _request_timeout_seconds = seconds


__all__ = [
    "REQUEST_TIMEOUT_SECONDS",
    "ApiException",
    "api_client",
    "create_job",
    "create_lease",
    "current_namespace",
    "list_uids",
    "load_config",
    "patch_aijob",
    "patch_aijob_status",
    "patch_job",
    "patch_lease",
    "read_aijob",
    "read_job",
    "read_lease",
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
    return kubernetes.client.ApiClient(configuration)


def _plain(obj: Any) -> dict[str, Any]:
    return api_client().sanitize_for_serialization(obj)


def patch_aijob(
    namespace: str, name: str, body: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(api_client())
    return api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        body,
        _content_type=MERGE_PATCH,
        _request_timeout=timeout or _request_timeout_seconds,
    )


def read_aijob(namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(api_client())
    return api.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, _request_timeout=timeout or _request_timeout_seconds
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
    return api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        body,
        _content_type=MERGE_PATCH,
        _request_timeout=timeout or _request_timeout_seconds,
    )


def create_job(namespace: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(
        api.create_namespaced_job(namespace, body, _request_timeout=timeout or _request_timeout_seconds)
    )


def read_job(namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(
        api.read_namespaced_job(name, namespace, _request_timeout=timeout or _request_timeout_seconds)
    )


def patch_job(
    namespace: str, name: str, body: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    """Merge-patch a Job (with ``metadata.resourceVersion`` in ``body``: only if it has not changed)."""
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(
        api.patch_namespaced_job(
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
            _request_timeout=timeout or _request_timeout_seconds,
        )
    )


def read_lease(namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.CoordinationV1Api(api_client())
    return _plain(
        api.read_namespaced_lease(name, namespace, _request_timeout=timeout or _request_timeout_seconds)
    )


def create_lease(namespace: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    api = kubernetes.client.CoordinationV1Api(api_client())
    return _plain(
        api.create_namespaced_lease(namespace, body, _request_timeout=timeout or _request_timeout_seconds)
    )


def patch_lease(
    namespace: str, name: str, body: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    """Merge patch; a ``metadata.resourceVersion`` in ``body`` makes it conditional (409 if stale)."""
    api = kubernetes.client.CoordinationV1Api(api_client())
    return _plain(
        api.patch_namespaced_lease(
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
            _request_timeout=timeout or _request_timeout_seconds,
        )
    )


def list_uids(path: str, page_size: int = LIST_PAGE_SIZE, timeout: float | None = None) -> set[str]:
    """The uids of the objects a collection ``path`` (``/api/v1/namespaces/ns/pods``, ``/api/v1/nodes``)
    holds now: a paged list (``limit``/``continue``) of their metadata only, read from etcd (no
    ``resourceVersion``: never an older cache). ``ApiException`` when a page fails (a ``continue``
    token that expired meanwhile included: 410)."""
    client = api_client()
    uids: set[str] = set()
    token = ""
    while True:
        query: list[tuple[str, Any]] = [("limit", page_size)]
        if token:
            query.append(("continue", token))
        method, url, headers, body, post = client.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": METADATA_LIST},
            auth_settings=["BearerToken"],
        )
        response = client.call_api(
            method,
            url,
            header_params=headers,
            body=body,
            post_params=post,
            _request_timeout=timeout or _request_timeout_seconds,
        )
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason)
        page = json.loads(response.read())
        for item in page.get("items") or []:
            uid = (item.get("metadata") or {}).get("uid")
            if uid:
                uids.add(uid)
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return uids
