"""The batch decision as pure functions: when (``batch_due`` on a given clock) and what (``decide``)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from energaizer_operator.batch import BatchTiming, PendingJob, TypeEstimate, batch_due, decide
from energaizer_operator.estimation import estimate_many
from energaizer_operator.inventory import NodeGPUs, compute_capacity
from energaizer_operator.models import AIJobSpec, Phase
from energaizer_operator.records import SpecCache, aijob_record, describe_spec_error, parse_spec
from operator_testkit import aijob

from energaizer.errors import InvalidInputError
from energaizer.placement import PlacementProblem, solve

TIMING = BatchTiming(quiet_seconds=1.0, max_delay_seconds=30.0)


# -------------------------------------------------------------------------------------- batch_due


def test_nothing_to_place_is_never_due():
    assert not batch_due(ready_since=[], last_arrival=None, backlog=0, now=1e6, timing=TIMING)


def test_waits_while_the_estimation_backlog_is_not_drained():
    args = {"ready_since": [100.0], "last_arrival": 100.0, "timing": TIMING}
    assert not batch_due(backlog=600, now=105.0, **args)  # burst still being estimated
    assert batch_due(backlog=0, now=105.0, **args)  # drained and quiet


def test_waits_for_the_quiet_window_after_the_last_arrival():
    args = {"ready_since": [100.0, 100.5], "backlog": 0, "timing": TIMING}
    assert not batch_due(last_arrival=100.5, now=101.0, **args)
    assert batch_due(last_arrival=100.5, now=101.5, **args)


def test_never_waits_longer_than_the_maximum_delay():
    args = {"ready_since": [100.0, 120.0], "last_arrival": 129.9, "timing": TIMING}
    assert not batch_due(backlog=5, now=129.9, **args)
    assert batch_due(backlog=5, now=130.0, **args)  # the oldest job waited 30 s: place anyway


def test_the_decision_depends_only_on_its_inputs():
    rng = random.Random(3)
    for _ in range(200):
        ready = [rng.uniform(0, 50) for _ in range(rng.randint(0, 5))]
        args = {
            "ready_since": ready,
            "last_arrival": max(ready, default=None),
            "backlog": rng.choice([0, 0, 3]),
            "now": rng.uniform(0, 80),
            "timing": TIMING,
        }
        assert batch_due(**args) == batch_due(**args)


# ----------------------------------------------------------------------------------------- decide


def _fixed_batch(seed: int = 5, n: int = 40) -> tuple[list[PendingJob], object]:
    rng = random.Random(seed)
    nodes = [NodeGPUs(f"{t}-{i}", f"P{t}", t, 8, True) for t in ("a", "b", "c") for i in range(2)]
    capacity = compute_capacity(nodes, [], [])
    jobs = []
    for j in range(n):
        base = rng.uniform(1e4, 1e6)
        est = {
            t: TypeEstimate(base * rng.uniform(0.5, 2.0), rng.uniform(10, 1000), 300.0, rng.random() > 0.1)
            for t in ("a", "b", "c")
        }
        gpr = rng.choice([1, 1, 2])
        jobs.append(PendingJob(f"ns/j{j}", f"u{j}", gpr, gpr, "energy", est))
    return jobs, capacity


def test_a_fixed_batch_is_placed_optimally():
    jobs, capacity = _fixed_batch()
    decisions, result = decide(jobs, capacity)
    types = capacity.types
    cost = np.full((len(jobs), len(types)), np.inf)
    for j, job in enumerate(jobs):
        for t, gpu_type in enumerate(types):
            est = job.estimates[gpu_type]
            if est.feasible:
                cost[j, t] = est.energy_joules
    problem = PlacementProblem(
        [j.key for j in jobs],
        types,
        cost,
        np.array([j.demand for j in jobs], dtype=float),
        np.array([capacity.free[t] for t in types], dtype=float),
    )
    best = solve(problem, time_limit_s=30, mip_rel_gap=1e-9)
    assert result.placed == best.placed
    assert result.objective <= best.objective * (1 + 1e-3)
    used = {t: 0 for t in types}
    for d in decisions:
        if d.gpu_type is not None:
            used[d.gpu_type] += d.job.demand
            assert d.job.estimates[d.gpu_type].feasible
    assert all(used[t] <= capacity.free[t] for t in types)
    # The same inputs give the same decisions (no clock, no randomness inside).
    again, _ = decide(jobs, capacity)
    assert [d.gpu_type for d in again] == [d.gpu_type for d in decisions]


# ------------------------------------------------------------------------- estimation and records


def test_batched_estimates_have_null_not_nan_for_infeasible_types():
    small = AIJobSpec.model_validate(aijob("s", requests=100)["spec"])
    huge = AIJobSpec.model_validate(aijob("h", model="llama-3.1-405b", requests=100)["spec"])
    results = estimate_many([(small, ["l4", "h100-sxm"]), (huge, ["l4"])])
    assert [e.gpu_type for e in results[0]] == ["l4", "h100-sxm"]
    assert all(e.feasible and e.energy_joules > 0 for e in results[0])
    (oom,) = results[1]
    assert not oom.feasible and oom.reason
    wire = oom.wire()
    assert wire["energyJoules"] is None and wire["durationSeconds"] is None
    assert wire["averagePowerWatts"] is None
    json.dumps([e.wire() for r in results for e in r], allow_nan=False)  # valid JSON


def test_one_bad_job_does_not_fail_the_batch():
    good = AIJobSpec.model_validate(aijob("g", requests=100)["spec"])
    bad_body = aijob("b", requests=100)
    bad_body["spec"]["workload"]["frequencyMhz"] = 4000  # outside every GPU's clock range
    bad = AIJobSpec.model_validate(bad_body["spec"])
    results = estimate_many([(good, ["l4"]), (bad, ["l4"]), (good, ["h100-sxm"])])
    assert isinstance(results[1], InvalidInputError)
    assert not isinstance(results[0], InvalidInputError) and not isinstance(results[2], InvalidInputError)


def test_a_knob_some_candidate_types_cannot_take_rules_those_out():
    """A 600 W what-if limit: the A100s (100-400 W) are infeasible with the range as the reason, the
    H100s estimated. Outside every candidate type's range: Invalid, alone in the batch, when the types
    were named (``candidateGpuTypes``) or no catalog type takes it (1500 W); when the candidates are the
    types present and another catalog type takes it, each is infeasible naming the types it fits (the
    AIJob is Unschedulable until one joins)."""
    body = aijob("p", requests=100)
    body["spec"]["workload"]["powerLimitW"] = 600
    capped = AIJobSpec.model_validate(body["spec"])
    named = AIJobSpec.model_validate(body["spec"] | {"placement": {"candidateGpuTypes": ["a100-sxm4-40gb"]}})
    body["spec"]["workload"]["powerLimitW"] = 1500
    absurd = AIJobSpec.model_validate(body["spec"])
    good = AIJobSpec.model_validate(aijob("g", requests=100)["spec"])
    mixed, only_a100, only_named, too_much, other = estimate_many(
        [
            (capped, ["a100-sxm4-40gb", "h100-sxm"]),
            (capped, ["a100-sxm4-40gb"]),
            (named, ["a100-sxm4-40gb"]),
            (absurd, ["a100-sxm4-40gb"]),
            (good, ["l4"]),
        ]
    )
    a100, h100 = mixed
    assert not a100.feasible and "outside a100-sxm4-40gb's power-limit range 100-400 W" in a100.reason
    assert a100.wire()["energyJoules"] is None
    assert h100.feasible and h100.energy_joules > 0
    (alone,) = only_a100
    assert not alone.feasible and "outside a100-sxm4-40gb's power-limit range 100-400 W" in alone.reason
    assert (
        "; spec.workload.powerLimitW 600 W fits b200, gb200, h100-sxm, h200, mi300x (none present)"
        in alone.reason
    )
    assert isinstance(only_named, InvalidInputError) and only_named.field == "power_limit_w"
    assert isinstance(too_much, InvalidInputError) and too_much.field == "power_limit_w"
    assert not isinstance(other, InvalidInputError) and other[0].feasible


def test_deadline_makes_slow_types_infeasible_with_null_numbers():
    spec = AIJobSpec.model_validate(aijob("d", requests=20000, deadlineSeconds=1.0)["spec"])
    (est,) = estimate_many([(spec, ["l4"])])[0]
    assert not est.feasible and "deadline" in est.reason and est.energy_joules is None


def test_spec_is_parsed_once_per_generation_and_errors_name_the_field():
    cache = SpecCache()
    body = aijob("x")
    body["metadata"].update(uid="u1", generation=1)
    first = aijob_record(body, cache, "steer")
    body["status"] = {"phase": "Estimated", "observedGeneration": 1}
    second = aijob_record(body, cache, "steer")
    assert first.spec is second.spec  # the same parsed object: not validated again
    assert second.phase is Phase.ESTIMATED and not second.needs_estimate
    assert first.needs_estimate  # no phase yet: whatever kopf's annotations say
    body["metadata"]["generation"] = 2
    assert aijob_record(body, cache, "steer").needs_estimate  # a spec the operator has not handled

    bad = aijob("y")["spec"]
    bad["workload"]["model"] = "no-such-model"
    spec, error = parse_spec(bad, "steer")
    assert spec is None and error.field == "spec.workload.model" and error.message.startswith(error.field)
    bad = aijob("z")["spec"]
    bad["template"] = {}
    assert parse_spec(bad, "steer")[1].field == "spec.template.spec.containers"
    assert parse_spec(bad, "annotate")[1] is None  # annotate mode runs nothing: no template needed
    bad = aijob("w")["spec"]
    bad["workload"]["inference"]["requests"] = 0
    error = parse_spec(bad, "steer")[1]  # the Invalid condition's message: the bound and the value given
    assert error.message == "spec.workload.inference.requests: must be >= 1 (got 0)"
    bad = aijob("v")["spec"]
    bad["workload"]["expertParallel"] = 3  # a check across fields names the field as the CRD spells it
    assert parse_spec(bad, "steer")[1].field == "spec.workload.expertParallel"
    bad = aijob("u")["spec"]
    bad["resources"]["gpusPerReplica"] = 4096  # the estimator's gpu_count is the CRD's gpusPerReplica
    assert parse_spec(bad, "steer")[1].field == "spec.resources.gpusPerReplica"
    # a layout the attention heads cannot be split by (the CLI's and the CSV reader's check), before any batch
    bad = aijob("t")["spec"]
    bad["resources"]["gpusPerReplica"] = 3  # llama-3.1-8b: 32 heads
    error = parse_spec(bad, "steer")[1]
    assert error.field == "spec.resources.gpusPerReplica" and "32 attention heads" in error.message
    bad["resources"]["gpusPerReplica"] = 6
    bad["workload"] |= {"task": "training", "training": {"steps": 2}, "inference": None, "tensorParallel": 3}
    error = parse_spec(bad, "steer")[1]
    assert error.field == "spec.workload.tensorParallel" and "does not divide" in error.message
    good = aijob("s")["spec"]
    good["resources"]["gpusPerReplica"] = 8
    good["workload"] |= {"attention": "eager", "execution": "eager", "tensorParallel": 8}
    spec, error = parse_spec(good, "steer")
    assert error is None
    w = spec.to_workload()
    assert (w.attention, w.execution, w.tensor_parallel) == ("eager", "eager", 8)
    # the estimator's errors at estimation time (a clock outside one GPU type's range) likewise
    error = describe_spec_error(InvalidInputError("frequency_mhz", "4000 MHz is outside a10's clock range"))
    assert error.message == "spec.workload.frequencyMhz: 4000 MHz is outside a10's clock range"
    assert describe_spec_error(InvalidInputError("gpu_count", "x")).field == "spec.resources.gpusPerReplica"


def test_records_read_null_numbers_as_infeasible():
    body = aijob("n")
    body["metadata"].update(uid="u", generation=1)
    body["status"] = {
        "phase": "Estimated",
        "observedGeneration": 1,
        "estimates": [
            {
                "gpuType": "l4",
                "energyJoules": None,
                "durationSeconds": None,
                "feasible": False,
                "reason": "oom",
            },
            {
                "gpuType": "t4",
                "energyJoules": 5.0,
                "durationSeconds": 2.0,
                "averagePowerWatts": 2.5,
                "feasible": True,
            },
        ],
    }
    rec = aijob_record(body, SpecCache(), "steer")
    assert not rec.estimates["l4"].feasible and math.isinf(rec.estimates["l4"].energy_joules)
    assert rec.estimates["t4"].feasible and rec.estimates["t4"].energy_joules == 5.0


@pytest.mark.parametrize("phase", list(Phase))
def test_phases_are_the_contract_strings(phase):
    assert str(phase) == phase.value and Phase(phase.value) is phase
