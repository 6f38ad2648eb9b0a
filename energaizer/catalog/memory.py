"""DRAM access energy per bit by memory technology, relative to HBM2.

A GPU's DRAM power is E_bit x bits/s, with E_bit = ``dram_pj_per_bit`` (the profile's one fitted scale:
board-level energy per bit of an HBM2 access, DRAM core + interface + the GPU's PHY and controller) x the
ratio of its memory technology below. The ratios are published figures, never fitted, so a GPU with a
technology no measured row covers (the only GDDR part held out, an HBM3e part never measured) gets its
technology's energy, not the prior of a per-type constant:

- GDDR vs HBM: AMD's HBM launch material (Fiji, 2015) gives GDDR5 10.66 GB/s per W and HBM over 35 GB/s
  per W, i.e. 11.7 vs 3.6 pJ/bit: GDDR5 = 3.3 x HBM (off-package PCB I/O on both ends vs interposer I/O;
  Rambus, S. Woo, SemiEngineering 2019: a GDDR6 PHY draws 3.5-4.5x an HBM2 PHY's power).
- GDDR6 = GDDR5 x (1.35 V / 1.5 V)^2 = 0.81 x: the same I/O at GDDR6's lower I/O supply (JESD250 VDDQ
  1.35 V vs GDDR5's 1.5 V); I/O energy scales with V^2.
- GDDR6X = GDDR6 x 7.25 / 7.5 (Micron, "Ultra-bandwidth solutions" comparison: average device power
  7.5 pJ/bit GDDR6, 7.25 pJ/bit GDDR6X).
- GDDR7 = GDDR6 x 0.8 (Samsung's GDDR7 announcement, 2023: 20 % better power efficiency than GDDR6).
- HBM2E = HBM2 (the same 1.2 V core and I/O supply, JESD235C; faster pins).
- HBM3 and HBM3E = HBM2 x (1.1 V / 1.2 V)^2 = 0.84 x: JESD238 lowers the DRAM core supply from HBM2's
  1.2 V to 1.1 V (and the I/O supply to 0.4 V); the ratio scales only the core part with V^2, so it is an
  upper bound on the DRAM side, while the board-level part (the GPU's controller and crossbar) does not
  follow the DRAM supply. Judged held out (benchmarks/accuracy_holdout.py, refit without the group):
  leave-one-GPU-out energy / time / power 11.1 / 11.6 / 8.4 -> 11.2 / 11.8 / 8.1, the H100 held out
  13.2 / 14.0 / 10.7 -> 13.1 / 14.1 / 9.2, leave-one-family-out 10.7 / 11.2 / 7.6 -> 10.7 / 11.3 / 7.5:
  neutral on energy, better on power, and an H200/B200 (HBM3e, 4.8-8 TB/s) no longer draws HBM2's energy
  per bit at twice to four times an A100's bandwidth.
"""

from __future__ import annotations

from typing import Literal

MemoryTechnology = Literal["hbm2", "hbm2e", "hbm3", "hbm3e", "gddr6", "gddr6x", "gddr7"]

_GDDR5_VS_HBM = 3.3
_GDDR6 = _GDDR5_VS_HBM * (1.35 / 1.5) ** 2
_HBM3 = (1.1 / 1.2) ** 2  # JESD238 core supply vs HBM2's (see above)

DRAM_ENERGY_RATIO: dict[str, float] = {
    "hbm2": 1.0,
    "hbm2e": 1.0,
    "hbm3": _HBM3,
    "hbm3e": _HBM3,
    "gddr6": _GDDR6,
    "gddr6x": _GDDR6 * 7.25 / 7.5,
    "gddr7": _GDDR6 * 0.8,
}

# what a catalog entry without ``memory_technology`` is taken to have (the oldest of its kind in the catalog)
DEFAULT_TECHNOLOGY: dict[str, str] = {"hbm": "hbm2", "gddr": "gddr6"}


def dram_energy_ratio(memory_type: str, memory_technology: str | None) -> float:
    """Energy per bit of the GPU's DRAM relative to HBM2."""
    return DRAM_ENERGY_RATIO[memory_technology or DEFAULT_TECHNOLOGY[memory_type]]
