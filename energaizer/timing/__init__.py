"""Kernels -> time: seconds and module utilisation per kernel (tiles, waves, bandwidth), host time per row."""
