"""DRAM power is energy per bit of the GPU's memory technology (published ratios) x one fitted scale."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from energaizer.catalog import get_gpu
from energaizer.catalog.memory import DRAM_ENERGY_RATIO, dram_energy_ratio
from energaizer.catalog.schema import GPUSpec
from energaizer.errors import InvalidInputError
from energaizer.hardware import GpuTable
from energaizer.power.model import kernel_power
from energaizer.profile import DEFAULT_PROFILE_PATH, CalibrationProfile, load_profile
from energaizer.timing.kernel_time import KernelDevice, KernelTiming

NO_CORE = {"alpha_tensor": 0.0, "alpha_l2": 0.0, "alpha_sm": 0.0, "fp32_pj_per_flop": 0.0}


def _streaming(u_dram: float) -> KernelTiming:
    one, zero = np.ones(1), np.zeros(1)
    return KernelTiming(
        t_exec=one, u_tensor=zero, u_fp=zero, u_l2=zero, u_dram=np.full(1, u_dram), u_busy=zero,
        fp_flop_rate=zero, t_compute=zero,
    )  # fmt: skip


@pytest.mark.parametrize(("gpu", "technology"), [("a10", "gddr6"), ("h100-sxm", "hbm3"), ("l40s", "gddr6")])
def test_dram_power_is_the_technology_energy_per_bit_hand_checked(gpu, technology):
    spec = get_gpu(gpu)
    assert spec.memory_technology == technology
    hw = GpuTable.from_specs([spec])
    dev = KernelDevice(g=np.zeros(1, dtype=int), peak=np.ones(1), tensor=np.zeros(1, dtype=bool))
    prof = CalibrationProfile(dram_pj_per_bit=8.0, **NO_CORE)
    pw = kernel_power(_streaming(0.5), dev, np.array([spec.max_clock_mhz]), hw, prof)
    bits_per_s = 0.5 * spec.memory_bw_gbs * 1e9 * 8.0
    assert pw.memory[0] == pytest.approx(8e-12 * DRAM_ENERGY_RATIO[technology] * bits_per_s, rel=1e-12)


def test_gddr_costs_more_per_bit_than_hbm_and_newer_gddr_less():
    r = DRAM_ENERGY_RATIO
    assert r["gddr6"] > 2.0 * r["hbm2"]  # off-package PCB I/O on both ends vs interposer I/O
    assert r["gddr7"] < r["gddr6x"] < r["gddr6"]
    assert r["hbm2"] == r["hbm2e"]  # the same 1.2 V supplies (JESD235C)
    assert r["hbm3"] == r["hbm3e"] == pytest.approx((1.1 / 1.2) ** 2)  # JESD238's 1.1 V core supply


H100_RUNS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "h100-nvml-2026-11-22"


def _kernel_validation():
    spec = importlib.util.spec_from_file_location(
        "kernel_validation", H100_RUNS.parents[1] / "kernel_validation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hbm3_ratio_is_what_our_h100_streaming_kernels_draw():
    """The HBM3 figure is JESD238's core-supply ratio, not fitted; our H100 NVML kernels below the power cap
    (copies, adds and weight-streaming GEMMs of 0.1-3 GB per call, benchmarks/results/h100-nvml-2026-11-22)
    imply 0.80 x the profile's HBM2 energy per bit beside its other terms, within 0.05 of it."""
    rows = []
    for part in ("run1/kernels.csv", "sweep/sweep.csv"):
        with (H100_RUNS / part).open(newline="", encoding="utf-8") as fh:
            rows += [{**r, "gpu": "h100-sxm"} for r in csv.DictReader(fh)]
    ratio, error = _kernel_validation().fit_dram_energy_ratio(rows, load_profile(None))
    assert ratio == pytest.approx(DRAM_ENERGY_RATIO["hbm3"], abs=0.05)
    assert error < 0.05  # mean |log(predicted / measured power)| over those kernels


def test_a_catalog_entry_without_a_technology_gets_its_memory_type_default():
    base = get_gpu("a10").model_dump()
    base.update(id="my-gddr", memory_technology=None)
    assert dram_energy_ratio("gddr", GPUSpec(**base).memory_technology) == DRAM_ENERGY_RATIO["gddr6"]
    base.update(memory_type="hbm")
    assert dram_energy_ratio("hbm", GPUSpec(**base).memory_technology) == DRAM_ENERGY_RATIO["hbm2"]


def test_a_technology_of_the_other_memory_type_is_rejected():
    base = get_gpu("h100-sxm").model_dump()
    base.update(id="bad", memory_technology="gddr6")
    with pytest.raises(ValidationError, match="gddr6 is not hbm memory"):
        GPUSpec(**base)


@pytest.mark.parametrize("retired", ["dram_pj_per_bit_hbm", "dram_pj_per_bit_gddr"])
def test_a_profile_with_per_type_dram_energies_names_their_replacement(tmp_path, retired):
    prof = json.loads(DEFAULT_PROFILE_PATH.read_text())
    prof[retired] = 7.0
    path = tmp_path / "old.json"
    path.write_text(json.dumps(prof))
    with pytest.raises(InvalidInputError) as exc:
        load_profile(path)
    assert exc.value.field == retired and "dram_pj_per_bit" in str(exc.value)
