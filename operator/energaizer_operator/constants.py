"""Every name the operator shares with the cluster: API group/kind, annotation and label keys, Lease.

One module so that handlers, steering, inventory and the tests agree on the spelling;
``energaizer_operator`` re-exports the public ones.
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

# Labels.
AIJOB_LABEL = "energaizer.io/aijob"  # on a steered Job and its pods: the owner AIJob's name
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# Leader election (coordination.k8s.io/v1 Lease) between replicas.
LEASE_NAME = "energaizer-operator"
