"""Defaults of the built-in demo trace, the one source for both :class:`energaizer.planner.demo.DemoConfig`
and ``energaizer plan --demo-jobs/--demo-load`` (kept out of :mod:`energaizer.planner.demo` so that the
CLI can show them without importing numpy)."""

DEMO_JOBS = 2000
"""jobs in the demo trace"""
DEMO_LOAD = 0.5
"""offered load: GPU-seconds at reference-GPU speed over the arrival span, as a fraction of the pools' GPUs"""
