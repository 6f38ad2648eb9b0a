"""Fixtures shared by the kernel-table tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from energaizer import Workload
from energaizer.catalog import get_gpu, get_model
from energaizer.catalog.schema import ModelArchitecture
from energaizer.hardware import GpuTable
from energaizer.kernels.cnn import add_cnn
from energaizer.kernels.params import build_row_params
from energaizer.kernels.table import KernelTable, KernelTableBuilder
from energaizer.memory_plan import plan_memory


def _cnn_table(
    model: str, precision: str, task: str, images: int, gpu: str = "h100-sxm"
) -> tuple[ModelArchitecture, KernelTable]:
    arch = get_model(model)
    if task == "training":
        spec = {"training": {"steps": 1, "global_batch_size": images}}
    else:
        spec = {
            "inference": {"requests": images, "input_tokens": 1, "output_tokens": 0, "batch_size": images}
        }
    w = Workload.model_validate({"model": model, "task": task, "precision": precision, **spec})
    p = build_row_params([w], [get_gpu(gpu)], [arch])
    plan_memory(p, [arch], GpuTable.from_specs([get_gpu(gpu)]), np.zeros(1, dtype=int))
    b = KernelTableBuilder()
    add_cnn(b, p, np.arange(1), [arch.cnn])
    return arch, b.build()


@pytest.fixture
def cnn_table() -> Callable[..., tuple[ModelArchitecture, KernelTable]]:
    """(architecture, kernel table) of one CNN row: ``model``, ``precision``, ``task`` (one training
    step of ``images`` or one inference pass of ``images``) on ``gpu`` (default the H100 SXM)."""
    return _cnn_table
