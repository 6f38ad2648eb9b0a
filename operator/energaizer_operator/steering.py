"""Steering: the one batch/v1 Job an AIJob gets in ``steer`` mode, built from ``spec.template``.

The Job is named after the AIJob and owned by it, requires a node with the chosen GPU product
(required node affinity, ANDed with any affinity the template already has), asks for
``gpusPerReplica`` GPUs in its first container, runs ``replicas`` pods in parallel and carries the
contract annotations on itself and its pod template. With a Kueue queue label it is created
suspended, and Kueue admits it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from energaizer.errors import InvalidInputError
from energaizer_operator.constants import (
    AIJOB_LABEL,
    ANNOTATION_DURATION,
    ANNOTATION_ENERGY,
    ANNOTATION_GPU_TYPE,
    ANNOTATION_GPUS,
    KUEUE_QUEUE_LABEL,
)


def contract_annotations(gpu_type: str, energy_joules: float, duration_seconds: float) -> dict[str, str]:
    return {
        ANNOTATION_GPU_TYPE: gpu_type,
        ANNOTATION_ENERGY: f"{energy_joules:.6g}",
        ANNOTATION_DURATION: f"{duration_seconds:.6g}",
    }


def check_template(template: Mapping[str, Any]) -> None:
    """A steerable pod template has at least one named container with an image."""
    containers = (template.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        raise InvalidInputError(
            "spec.template.spec.containers", "steer mode needs a pod template with containers"
        )
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            raise InvalidInputError(f"spec.template.spec.containers[{i}]", "needs a name and an image")


def _require_product(pod_spec: dict[str, Any], label: str, products: Sequence[str]) -> None:
    expression = {"key": label, "operator": "In", "values": sorted(products)}
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:  # terms are ORed: the GPU product must hold in each of them
        term["matchExpressions"] = [
            e for e in term.get("matchExpressions") or [] if e.get("key") != label
        ] + [expression]
    required["nodeSelectorTerms"] = terms


def build_job(
    *,
    name: str,
    namespace: str,
    template: Mapping[str, Any],
    replicas: int,
    gpus_per_replica: int,
    gpu_type: str,
    products: Sequence[str],
    product_label: str,
    gpu_resource: str,
    energy_joules: float,
    duration_seconds: float,
) -> dict[str, Any]:
    """The Job body (owner reference added by the caller with ``kopf.adopt``)."""
    pod = copy.deepcopy(dict(template))
    pod_meta = pod.setdefault("metadata", {})
    pod_spec = pod.setdefault("spec", {})
    annotations = contract_annotations(gpu_type, energy_joules, duration_seconds)
    pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **annotations}
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), AIJOB_LABEL: name}
    pod_spec.setdefault("restartPolicy", "Never")
    _require_product(pod_spec, product_label, products)
    first = pod_spec["containers"][0]
    resources = first.setdefault("resources", {})
    resources["limits"] = {**(resources.get("limits") or {}), gpu_resource: str(gpus_per_replica)}
    if gpu_resource in (resources.get("requests") or {}):
        resources["requests"][gpu_resource] = str(gpus_per_replica)
    job_labels = {AIJOB_LABEL: name}
    queue = (pod_meta.get("labels") or {}).get(KUEUE_QUEUE_LABEL)
    if queue:
        job_labels[KUEUE_QUEUE_LABEL] = queue
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": job_labels,
            "annotations": {**annotations, ANNOTATION_GPUS: str(replicas * gpus_per_replica)},
        },
        "spec": {
            "parallelism": replicas,
            "completions": replicas,
            "suspend": bool(queue),
            "template": pod,
        },
    }


def owned_by(job: Mapping[str, Any], owner_uid: str) -> bool:
    refs = (job.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid for ref in refs)
