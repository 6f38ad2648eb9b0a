"""The operator's batch decision: build the PlacementProblem from cached estimates, then solve.

    .venv/bin/python benchmarks/bench_operator.py [--jobs 5000] [--types 10] [--repeat 3]

Synthetic but shaped like the operator's input: every pending AIJob has a cached estimate per GPU
type (some infeasible), 1-4 GPUs per replica, 1-2 replicas, and the cluster has fewer free GPUs than
the burst needs. Prints one row per batch size: problem build time, solve time, solver and placed jobs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from energaizer_operator.batch import PendingJob, TypeEstimate, build_problem, decide
from energaizer_operator.inventory import NodeGPUs, compute_capacity


def synthetic(n_jobs: int, n_types: int, seed: int = 0) -> tuple[list[PendingJob], object]:
    rng = np.random.default_rng(seed)
    types = [f"gpu-{t}" for t in range(n_types)]
    speed = rng.uniform(0.5, 3.0, n_types)
    power = rng.uniform(70, 1000, n_types)
    jobs: list[PendingJob] = []
    for j in range(n_jobs):
        work = rng.lognormal(8, 1.2)
        gpr = int(rng.choice([1, 1, 2, 4]))
        replicas = int(rng.choice([1, 1, 2]))
        est = {}
        for t, name in enumerate(types):
            duration = work / speed[t] * rng.uniform(0.9, 1.1)
            feasible = not (gpr == 1 and power[t] < 100 and work > 20000)  # small GPUs cannot hold big jobs
            est[name] = TypeEstimate(duration * power[t] * gpr * replicas, duration, power[t], feasible, "")
        jobs.append(PendingJob(f"ns/job-{j}", f"uid-{j}", gpr * replicas, gpr, "energy", est))
    demand = sum(job.demand for job in jobs)
    nodes = [
        NodeGPUs(f"{name}-{k}", name.upper(), name, 8, True)
        for name in types
        for k in range(max(1, int(0.7 * demand / n_types / 8)))
    ]
    return jobs, compute_capacity(nodes, [], [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, nargs="*", default=[200, 1000, 5000])
    ap.add_argument("--types", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        f"{'jobs':>6} {'types':>5} {'build ms':>9} {'decide ms':>10} {'solver':>12} {'placed':>7} {'optimal':>8}"
    )
    for n in args.jobs:
        jobs, cap = synthetic(n, args.types)
        builds, decides = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            build_problem(jobs, cap)
            t1 = time.perf_counter()
            _, result = decide(jobs, cap)
            t2 = time.perf_counter()
            builds.append(t1 - t0)
            decides.append(t2 - t1)
        print(
            f"{n:>6} {args.types:>5} {1000 * min(builds):>9.1f} {1000 * min(decides):>10.1f} "
            f"{result.solver:>12} {result.placed:>7} {result.optimal!s:>8}"
        )
    print("decide = build + solve (the operator's whole batch decision, excluding API calls)")


if __name__ == "__main__":
    main()
