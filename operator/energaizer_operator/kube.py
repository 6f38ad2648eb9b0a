"""The few Kubernetes API calls the operator makes itself (kopf makes the rest), via the official client.

Credentials are the same as kopf's default login: in-cluster service account, else the current
kubeconfig (``KUBECONFIG``). Calls are synchronous; async code runs them with ``asyncio.to_thread``.
Only PATCH (merge patch) is used for updates.
"""

from __future__ import annotations

import functools
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from energaizer_operator import GROUP, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"

__all__ = [
    "ApiException",
    "api_client",
    "create_job",
    "patch_aijob",
    "patch_aijob_status",
    "patch_job",
    "read_job",
]


@functools.lru_cache(maxsize=1)
def api_client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


def _plain(obj: Any) -> dict[str, Any]:
    return api_client().sanitize_for_serialization(obj)


def patch_aijob(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(api_client())
    return api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH
    )


def patch_aijob_status(namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(api_client())
    return api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
    )


def create_job(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return _plain(kubernetes.client.BatchV1Api(api_client()).create_namespaced_job(namespace, body))


def read_job(namespace: str, name: str) -> dict[str, Any]:
    return _plain(kubernetes.client.BatchV1Api(api_client()).read_namespaced_job(name, namespace))


def patch_job(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch a Job (with ``metadata.resourceVersion`` in ``body``: only if it has not changed)."""
    api = kubernetes.client.BatchV1Api(api_client())
    return _plain(api.patch_namespaced_job(name, namespace, body, _content_type=MERGE_PATCH))
