"""One GEMM through the kernel timing model, for the timing and power tests (importable by name: the
pytest ``pythonpath`` lists this folder)."""

from __future__ import annotations

import numpy as np

from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTable, KernelTableBuilder
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice, kernel_timing


def one_gemm(
    m: float,
    n: float,
    k: float,
    element_bytes: float,
    nbytes: float | None = None,
    moe_grouped: bool = False,
    channel_scaled: bool = False,
) -> KernelTable:
    """A kernel table of one m x n x k GEMM launched once; ``nbytes`` defaults to reading both operands
    and writing the result once; ``moe_grouped``: a grouped expert GEMM; ``channel_scaled``: its
    low-precision weights scale per output channel, not per block."""
    return one_kernel(
        Op.LINEAR,
        Phase.PREFILL,
        m=m,
        n=n,
        k=k,
        flops=2 * m * n * k,
        bytes=(m * k + k * n + m * n) * element_bytes if nbytes is None else nbytes,
        precision_bytes=element_bytes,
        moe_grouped=moe_grouped,
        channel_scaled=channel_scaled,
    )


def one_kernel(op: Op, phase: Phase, **fields) -> KernelTable:
    """A kernel table of one kernel of ``op`` in ``phase`` launched once, with the KernelTableBuilder
    ``fields`` given (shape, work, bytes, flags)."""
    b = KernelTableBuilder()
    b.add(np.array([0]), op, phase, 1.0, **fields)
    return b.build()


def one_gpu(gpu: str, precision: str) -> tuple[GpuTable, KernelDevice]:
    """The hardware table of one GPU and a one-kernel device column for the math unit of ``precision``."""
    hw = GpuTable.from_specs([get_gpu(gpu)])
    peak, tensor = hw.peak(0, precision)
    return hw, KernelDevice(g=np.zeros(1, dtype=int), peak=np.array([peak]), tensor=np.array([tensor]))


def gemm_at_max_clock(
    m: float, n: float, k: float, gpu: str, precision: str, prof: CalibrationProfile | None = None
) -> tuple[float, float]:
    """(seconds, share of the datasheet peak at the max clock) of one m x n x k GEMM at the GPU's max clock."""
    eb = 4.0 if precision == "fp32" else 2.0
    hw, dev = one_gpu(gpu, precision)
    clock = hw.max_clock_mhz[0]
    t = float(
        kernel_timing(one_gemm(m, n, k, eb), dev, np.array([clock]), hw, prof or CalibrationProfile()).t_exec[
            0
        ]
    )
    return t, 2 * m * n * k / t / (dev.peak[0] * clock / hw.tensor_clock_mhz[0])
