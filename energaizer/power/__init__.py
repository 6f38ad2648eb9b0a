"""Utilisation -> power: idle/static power plus per-module dynamic power, V^2 f scaling, power cap."""
