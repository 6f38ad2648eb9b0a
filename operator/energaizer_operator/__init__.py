"""energaizer's Kubernetes operator (kopf): AIJob CRD, GPU inventory, energy-aware placement, steering.

Run it with ``energaizer operator`` (or ``python -m energaizer_operator``). The kopf handlers live in
:mod:`energaizer_operator.handlers`; everything else is plain Python that the handlers call.
"""

from __future__ import annotations

GROUP = "energaizer.io"
VERSION = "v1alpha1"
PLURAL = "aijobs"
KIND = "AIJob"
SHORT_NAME = "aij"
API_VERSION = f"{GROUP}/{VERSION}"

# Contract section 2: annotations on the AIJob, its Job and the Job's pod template.
ANNOTATION_GPU_TYPE = "energaizer.io/gpu-type"
ANNOTATION_ENERGY = "energaizer.io/predicted-energy-joules"
ANNOTATION_DURATION = "energaizer.io/predicted-duration-seconds"
# Extension: total GPUs a steered Job holds (replicas x gpusPerReplica), used for capacity accounting.
ANNOTATION_GPUS = "energaizer.io/gpus"

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

__all__ = [
    "ANNOTATION_DURATION",
    "ANNOTATION_ENERGY",
    "ANNOTATION_GPUS",
    "ANNOTATION_GPU_TYPE",
    "API_VERSION",
    "GROUP",
    "KIND",
    "KUEUE_QUEUE_LABEL",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
]
