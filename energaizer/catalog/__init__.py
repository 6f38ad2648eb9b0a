"""The GPU and model catalogs: built-in YAML entries merged with user catalog files.

Public functions: :func:`get_gpu`, :func:`list_gpus`, :func:`get_model`, :func:`list_models`,
:func:`load_extra` and :func:`gpu_id_for_product`. See ``docs/catalog.md``.
Returned entries are shared, cached objects: copy them (``model_copy``) before changing them.
"""

from __future__ import annotations

from energaizer.catalog.loader import ENV_VAR, CatalogFile, current, load_extra, reset_extra
from energaizer.catalog.products import gpu_id_for_product, parse_product, resolve_product
from energaizer.catalog.schema import GPUSpec, ModelArchitecture

__all__ = [
    "ENV_VAR",
    "CatalogFile",
    "GPUSpec",
    "ModelArchitecture",
    "get_gpu",
    "get_model",
    "gpu_id_for_product",
    "list_gpus",
    "list_models",
    "load_extra",
    "parse_product",
    "reset_extra",
    "resolve_product",
]


def get_gpu(name: str) -> GPUSpec:
    """The GPU whose id, alias, name or GFD-style name is ``name`` (case-insensitive).

    Raises :class:`energaizer.errors.UnknownNameError` listing the known ids.
    """
    return current().get_gpu(name)


def list_gpus() -> list[GPUSpec]:
    """Every catalog GPU, built-in order first, user additions after."""
    return current().list_gpus()


def get_model(name: str) -> ModelArchitecture:
    """The model whose id, alias or Hugging Face id is ``name`` (case-insensitive)."""
    return current().get_model(name)


def list_models() -> list[ModelArchitecture]:
    """Every catalog model, built-in order first, user additions after."""
    return current().list_models()
