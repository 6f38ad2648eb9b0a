"""energaizer: fast analytical GPU energy estimation for AI workloads (EnergAIzer method).

Public API (imports are lazy so that ``energaizer --help`` starts fast)::

    from energaizer import Workload, estimate
    estimate(Workload(model="llama-3.1-8b", inference={"requests": 1000}), gpus=["h100-sxm", "a100-sxm4-80gb"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "estimate": "energaizer.estimator",
    "estimate_pairs": "energaizer.estimator",
    "estimate_matrix": "energaizer.estimator",
    "estimate_csv": "energaizer.estimator",
    "map_csv": "energaizer.estimator",
    "Workload": "energaizer.workload",
    "InferenceSpec": "energaizer.workload",
    "TrainingSpec": "energaizer.workload",
    "Estimate": "energaizer.result",
    "EstimateBatch": "energaizer.result",
    "GPUSpec": "energaizer.catalog.schema",
    "ModelArchitecture": "energaizer.catalog.schema",
    "get_gpu": "energaizer.catalog",
    "get_model": "energaizer.catalog",
    "list_gpus": "energaizer.catalog",
    "list_models": "energaizer.catalog",
    "CalibrationProfile": "energaizer.profile",
    "EnergaizerError": "energaizer.errors",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from energaizer.catalog import get_gpu, get_model, list_gpus, list_models  # noqa: F401
    from energaizer.catalog.schema import GPUSpec, ModelArchitecture  # noqa: F401
    from energaizer.errors import EnergaizerError  # noqa: F401
    from energaizer.estimator import estimate, estimate_csv, estimate_matrix, estimate_pairs, map_csv  # noqa: F401
    from energaizer.profile import CalibrationProfile  # noqa: F401
    from energaizer.result import Estimate, EstimateBatch  # noqa: F401
    from energaizer.workload import InferenceSpec, TrainingSpec, Workload  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'energaizer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
