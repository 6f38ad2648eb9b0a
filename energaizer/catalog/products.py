"""Node-label normalisation: ``nvidia.com/gpu.product`` (GPU Feature Discovery) -> catalog GPU id.

GPU Feature Discovery writes the product name reported by the driver, with spaces as dashes
(``NVIDIA-H100-80GB-HBM3``, ``Tesla-T4``). Two decorations are added on top of it:

* ``-SHARED`` when the GPU is time-sliced or shared through MPS (``NVIDIA-A10G-SHARED``);
* ``-MIG-<profile>`` when the node exposes MIG devices (``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb``).

:func:`parse_product` splits those off; :func:`resolve_product` maps the result to a catalog id,
first through an explicit ``mapping`` (label value -> catalog id or alias, case-insensitive; it
overrides everything), then through the catalog's ``gfd_products`` lists, then through the usual
catalog names (ids, aliases, GPU names). A MIG slice maps to its parent GPU; the profile is kept
apart for the caller to weigh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from energaizer.catalog.loader import current
from energaizer.errors import UnknownNameError

_SHARED_SUFFIX = "-shared"
_MIG = re.compile(r"^(?P<parent>.+?)-MIG-(?P<profile>[0-9a-z.+]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ProductLabel:
    """A ``nvidia.com/gpu.product`` value split into its parts."""

    raw: str
    product: str
    mig_profile: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class ResolvedProduct:
    """A product label resolved to a catalog GPU id."""

    gpu_id: str
    label: ProductLabel

    @property
    def mig_profile(self) -> str | None:
        return self.label.mig_profile


def parse_product(value: str) -> ProductLabel:
    """Strip ``-SHARED`` and ``-MIG-<profile>`` decorations from a GFD product value."""
    raw = value
    product = value.strip()
    shared = False
    if product.lower().endswith(_SHARED_SUFFIX):
        product = product[: -len(_SHARED_SUFFIX)]
        shared = True
    mig_profile = None
    match = _MIG.match(product)
    if match:
        product = match.group("parent")
        mig_profile = match.group("profile").lower()
    return ProductLabel(raw=raw, product=product, mig_profile=mig_profile, shared=shared)


def _lookup_mapping(mapping: Mapping[str, str], label: ProductLabel) -> str | None:
    lowered = {k.strip().lower(): v for k, v in mapping.items()}
    for candidate in (label.raw.strip(), label.product):
        target = lowered.get(candidate.lower())
        if target is not None:
            return target
    return None


def resolve_product(value: str | None, mapping: Mapping[str, str] | None = None) -> ResolvedProduct | None:
    """Resolve a GFD product label value; ``None`` when it names no catalog GPU.

    A ``mapping`` target that is not a catalog GPU raises :class:`UnknownNameError`, because it is
    a configuration error rather than an unknown node.
    """
    if value is None or not value.strip():
        return None
    label = parse_product(value)
    catalog = current()
    if mapping:
        target = _lookup_mapping(mapping, label)
        if target is not None:
            return ResolvedProduct(gpu_id=catalog.get_gpu(target).id, label=label)
    gpu_id = catalog.gfd_index.get(label.product.lower())
    if gpu_id is not None:
        return ResolvedProduct(gpu_id=gpu_id, label=label)
    try:
        return ResolvedProduct(gpu_id=catalog.get_gpu(label.product).id, label=label)
    except UnknownNameError:
        return None


def gpu_id_for_product(value: str | None, mapping: Mapping[str, str] | None = None) -> str | None:
    """Catalog GPU id for a ``nvidia.com/gpu.product`` value (MIG slices map to the parent GPU)."""
    resolved = resolve_product(value, mapping)
    return resolved.gpu_id if resolved else None
