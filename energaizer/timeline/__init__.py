"""Kernels -> execution timeline: time per kernel and module utilisation (tiles, waves, bandwidth)."""
