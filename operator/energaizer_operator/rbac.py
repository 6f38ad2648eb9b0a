"""The Kubernetes API calls the operator makes, as RBAC rules (the Helm chart's ClusterRole covers these).

Every rule is used by a line of code: the operator's own calls (steering, status mirroring) and
kopf's (watches behind the indices and handlers, events, resource discovery, namespace watching in
namespaced mode). No wildcards.
"""

from __future__ import annotations

from typing import TypedDict


class PolicyRule(TypedDict):
    apiGroups: list[str]
    resources: list[str]
    verbs: list[str]


REQUIRED_RULES: list[PolicyRule] = [
    # The AIJob custom resource: kopf watches it, the operator patches its annotations (contract) and
    # its status subresource (estimates, placement, mirrored Job phase).
    {"apiGroups": ["energaizer.io"], "resources": ["aijobs"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["energaizer.io"], "resources": ["aijobs/status"], "verbs": ["get", "patch"]},
    # GPU inventory: the node index (GPU product label, allocatable GPUs, readiness).
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    # GPUs already requested by pods (the pod index).
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    # Steering: one batch/v1 Job per AIJob (create, read back on 409 Conflict, watch for status).
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "patch"]},
    # Leader election between replicas (leader.py): one Lease, created once, then read and renewed.
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]},
    # Events about the AIJobs (posted through kopf).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    # kopf: resource discovery and namespace watching in namespaced mode.
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
]
