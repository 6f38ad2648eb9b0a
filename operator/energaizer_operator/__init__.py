"""energaizer's Kubernetes operator (kopf): AIJob CRD, GPU inventory, energy-aware placement, steering.

Run it with ``energaizer operator`` (or ``python -m energaizer_operator``). The kopf handlers live in
:mod:`energaizer_operator.handlers`; everything else is plain Python that the handlers call.
"""

from __future__ import annotations

from energaizer_operator.constants import (
    AIJOB_LABEL,
    ANNOTATION_DURATION,
    ANNOTATION_ENERGY,
    ANNOTATION_GPU_TYPE,
    ANNOTATION_GPUS,
    API_VERSION,
    GROUP,
    KIND,
    KUEUE_QUEUE_LABEL,
    LEASE_NAME,
    PLURAL,
    SHORT_NAME,
    VERSION,
)

__all__ = [
    "AIJOB_LABEL",
    "ANNOTATION_DURATION",
    "ANNOTATION_ENERGY",
    "ANNOTATION_GPUS",
    "ANNOTATION_GPU_TYPE",
    "API_VERSION",
    "GROUP",
    "KIND",
    "KUEUE_QUEUE_LABEL",
    "LEASE_NAME",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
]
