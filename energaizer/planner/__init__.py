"""Capacity planning (``energaizer plan``): replay a job trace on GPU node pools under several
placement policies and compare fleet energy (jobs + idle GPUs over one common horizon, static or
elastic fleet), job energy, cost, carbon, makespan, waits and utilisation against offline lower
bounds. See ``docs/planning.md``.

Modules: :mod:`pools` (node pools, what-if flags), :mod:`trace` (job trace CSV), :mod:`costs`
(per job x pool estimates, cached), :mod:`policies` and :mod:`simulate` (the event-driven
replay; the energy-aware policy is :func:`energaizer.placement.solve`), :mod:`bounds`,
:mod:`fleet` (idle GPUs of a schedule in either fleet mode),
:mod:`plan` (``run_plan``, ``run_power_sweeps``), :mod:`report` and :mod:`plots` (outputs),
:mod:`demo` (the built-in demo trace). ``tools/fit_alibaba.py`` and ``tools/azure_extract.py``
rebuild the shipped demo data from ``../shared/traces``.
"""
