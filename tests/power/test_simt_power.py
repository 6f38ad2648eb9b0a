"""CUDA-core (SIMT) power is energy per FLOP, not a share of TDP."""

from __future__ import annotations

import numpy as np
import pytest
from gemm_support import one_gemm

from energaizer import Workload, estimate
from energaizer.power.dvfs import voltage_ratio
from energaizer.power.model import kernel_power
from energaizer.profile import CalibrationProfile
from energaizer.timing.kernel_time import kernel_timing

SIMT_ONLY = {"alpha_tensor": 0.0, "alpha_l2": 0.0, "alpha_sm": 0.0, "dram_pj_per_bit": 0.0}


def _sgemm_table(n: float = 8192.0):
    return one_gemm(n, n, n, 4.0, nbytes=12 * n * n)


@pytest.mark.parametrize(
    ("gpu", "mhz"), [("a100-pcie-40gb", 1410.0), ("a100-pcie-40gb", 900.0), ("v100-sxm2-32gb", 1530.0)]
)
def test_simt_power_is_energy_per_flop_hand_checked(gpu, mhz, device):
    """An sgemm's CUDA-core power = pJ/FLOP x executed FLOP/s x (V/V_max)^2, nothing else."""
    prof = CalibrationProfile(fp32_pj_per_flop=9.0, **SIMT_ONLY)
    hw, dev = device(gpu, "fp32")
    f = np.array([mhz])
    tm = kernel_timing(_sgemm_table(), dev, f, hw, prof)
    pw = kernel_power(tm, dev, f, hw, prof)
    flop_rate = 2 * 8192.0**3 / tm.t_exec[0]
    v = voltage_ratio(f, np.zeros(1, dtype=int), hw, prof)[0]
    assert pw.compute[0] == pytest.approx(9e-12 * flop_rate * v**2, rel=1e-9)
    assert pw.compute[0] > 0


def test_simt_power_does_not_follow_tdp(device):
    """Two boards with the same die and clocks but different TDP draw the same SIMT power for the same
    sgemm (a TDP-scaled term would give the 400 W board 60 % more)."""
    prof = CalibrationProfile(fp32_pj_per_flop=9.0, **SIMT_ONLY)
    draws = []
    for gpu in ("a100-pcie-40gb", "a100-sxm4-40gb"):
        hw, dev = device(gpu, "fp32")
        f = np.array([1410.0])  # f_max of both: the voltage ratio is 1 on either table
        draws.append(
            kernel_power(kernel_timing(_sgemm_table(), dev, f, hw, prof), dev, f, hw, prof).compute[0]
        )
    assert draws[0] == pytest.approx(draws[1], rel=1e-9)


def test_shipped_profile_gives_ga102_simt_gemms_the_power_of_its_bf16_gemms():
    """Measured on the A10 at 900 MHz (EnergAIzer artifact): ViT-L fp32 draws 127-141 W, bf16 104-121 W;
    128 FP32 lanes per SM running flat out cost at least what the tensor cores do. A TDP-scaled SIMT
    term put fp32 at 0.65 x bf16 (73 W)."""
    w = {
        "model": "google/vit-large-patch16-224",
        "inference": {"requests": 32, "batch_size": 32, "input_tokens": 1, "output_tokens": 0},
        "frequency_mhz": 900,
    }
    fp32 = estimate(Workload.model_validate({**w, "precision": "fp32"}), "a10")[0]
    bf16 = estimate(Workload.model_validate({**w, "precision": "bf16"}), "a10")[0]
    assert fp32.average_power_watts > 0.9 * bf16.average_power_watts
