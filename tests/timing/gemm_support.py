"""Time one GEMM through the kernel timing model (shared by the estimator physics tests)."""

from __future__ import annotations

import numpy as np

from energaizer.catalog import get_gpu
from energaizer.hardware import GpuTable
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import KernelDevice, kernel_timing


def gemm_at_max_clock(
    m: float, n: float, k: float, gpu: str, precision: str, prof: CalibrationProfile | None = None
) -> tuple[float, float]:
    """(seconds, share of the datasheet peak at f_max) of one m x n x k GEMM at the GPU's maximum clock."""
    eb = 4.0 if precision == "fp32" else 2.0
    b = KernelTableBuilder()
    b.add(
        np.array([0]),
        Op.LINEAR,
        Phase.PREFILL,
        1.0,
        m=m,
        n=n,
        k=k,
        flops=2 * m * n * k,
        bytes=(m * k + k * n + m * n) * eb,
        precision_bytes=eb,
    )
    hw = GpuTable.from_specs([get_gpu(gpu)])
    peak, tensor = hw.peak(0, precision)
    dev = KernelDevice(g=np.zeros(1, dtype=int), peak=np.array([peak]), tensor=np.array([tensor]))
    t = float(
        kernel_timing(
            b.build(), dev, np.array([hw.max_clock_mhz[0]]), hw, prof or CalibrationProfile()
        ).t_exec[0]
    )
    return t, 2 * m * n * k / t / (peak * hw.max_clock_mhz[0] / hw.tensor_clock_mhz[0])
