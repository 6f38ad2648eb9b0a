"""Workload spec -> the kernels optimized AI code actually runs (shapes, FLOPs, bytes, counts)."""
