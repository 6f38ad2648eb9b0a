"""L2 residency of eager elementwise chains: a kernel whose footprint fits the GPU's L2 moves its bytes
at the L2's rate and draws no DRAM traffic; one larger than the L2 streams from DRAM as before."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer.hardware import SM_L2_BYTES_PER_CYCLE
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.table import KernelTableBuilder
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import kernel_timing, l2_resident_share


def _chain(nbytes: float, footprints: list[float]):
    b = KernelTableBuilder()
    for i, fp in enumerate(footprints):
        b.add(
            np.array([i]),
            Op.NORM_ACT,
            Phase.PREFILL,
            1.0,
            bytes=nbytes,
            l2_footprint=fp,
            precision_bytes=2.0,
            eager=True,  # eager chains are what the L2 residency rule is for
        )
    return b.build()


def _timing(gpu: str, nbytes: float, footprints: list[float], device):
    hw, dev1 = device(gpu, "bf16")
    kt = _chain(nbytes, footprints)
    dev = dev1.subset(np.zeros(len(footprints), dtype=np.int64))
    # enough bytes in flight that the DRAM share, not Little's law, sets the eager streams' rate
    prof = CalibrationProfile(
        dram_efficiency=0.9, kernel_latency_us=0.0, wave_overhead_cycles=0.0, in_flight_bytes_per_l1_kb=1e3
    )
    return kt, dev, hw, kernel_timing(kt, dev, np.full(len(footprints), hw.max_clock_mhz[0]), hw, prof)


@pytest.mark.parametrize("gpu", ["h100-sxm", "a100-pcie-40gb", "a10"])
def test_resident_share_from_the_catalog_l2(gpu, device):
    """All of it up to a quarter of the L2 (half of the half a stream read by every SM can use), none from
    half of it on, linear between; no footprint: DRAM."""
    hw, _ = device(gpu, "bf16")
    l2 = hw.l2_bytes[0]
    fps = [0.0, 0.125 * l2, 0.25 * l2, 0.375 * l2, 0.5 * l2, 3.0 * l2]
    kt = _chain(1e6, fps)
    share = l2_resident_share(kt, hw, np.zeros(len(fps), dtype=np.int64))
    np.testing.assert_allclose(share, [0.0, 1.0, 1.0, 0.5, 0.0, 0.0])


def test_resident_kernel_runs_at_the_l2_rate_without_dram_traffic(device):
    """16 MB moved by a kernel touching 12 MB (a quarter of the H100's 50 MB L2): L2 time, no DRAM
    activity; the same bytes with a 200 MB footprint stream from DRAM at the streaming rate."""
    nbytes = 16e6
    _, _, hw, tm = _timing("h100-sxm", nbytes, [12e6, 200e6, 0.0], device)
    clock_hz = hw.max_clock_mhz[0] * 1e6
    l2_bw = SM_L2_BYTES_PER_CYCLE * hw.sm_count[0] * clock_hz
    dram_bw = hw.dram_bytes_per_s[0] * 0.9
    assert tm.t_exec[0] == pytest.approx(nbytes / l2_bw, rel=1e-9)
    assert tm.u_dram[0] == 0.0
    assert tm.t_exec[1] == pytest.approx(nbytes / dram_bw, rel=1e-9)
    assert tm.t_exec[2] == pytest.approx(tm.t_exec[1], rel=1e-12)
    assert tm.u_dram[1] > 0.5
    assert tm.u_l2[0] > tm.u_l2[1]


def test_the_same_tensor_stays_in_an_h100_l2_but_not_in_an_a10s(device):
    """A 10 MB footprint: a fifth of the H100's 50 MB L2, more than the A10's 6 MB."""
    *_, h100 = _timing("h100-sxm", 10e6, [10e6, 0.0], device)
    *_, a10 = _timing("a10", 10e6, [10e6, 0.0], device)
    assert h100.t_exec[0] < 0.7 * h100.t_exec[1]
    assert a10.t_exec[0] == pytest.approx(a10.t_exec[1], rel=1e-12)
