"""High availability: two real operator processes, one Lease; the standby takes over after a SIGKILL."""

from __future__ import annotations

import asyncio
import re
import signal

import pytest
from kmock_support import RealisticEmulator
from operator_testkit import metrics_when, wait_for
from test_operator_acceptance import SETTLED, _burst, _limited_cluster, assert_settled_consistently

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)

LEASES = "coordination.k8s.io/v1/leases"


def placed_gauge(metrics: str) -> float:
    match = re.search(r'^energaizer_aijobs\{phase="Placed"\} ([0-9.e+]+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def holder(c) -> str | None:
    try:
        lease = c.k8s.objects[LEASES, "default", "energaizer-operator"].raw
    except KeyError:
        return None
    return (lease.get("spec") or {}).get("holderIdentity")


def tenure(c) -> tuple[str | None, str | None]:
    """Who holds the Lease and since when: the same pair before and after a check, the same tenure."""
    try:
        spec = c.k8s.objects[LEASES, "default", "energaizer-operator"].raw.get("spec") or {}
    except KeyError:
        return None, None
    return spec.get("holderIdentity"), spec.get("acquireTime")


def holds(c, op) -> bool:
    return (holder(c) or "").endswith(f"-{op.proc.pid}")


def writes_before_leading(log: str) -> list[str]:
    """The lines of a replica's log that report a write (an estimate, a placement batch) before the line
    that says it leads (``<identity>: leading``): a standby writes nothing."""
    standby = re.split(r": leading$", log, maxsplit=1, flags=re.MULTILINE)[0]
    return [line for line in standby.splitlines() if "placement batch" in line or "estimated" in line]


async def test_standby_takes_over_after_the_leader_is_killed(cluster, operator_factory):
    """The replica that holds the Lease writes and exports the AIJob gauges, the other writes nothing and
    leaves the gauges to it; once the leader is killed the other takes the Lease over and places the rest,
    every AIJob once. Which replica leads is read from the Lease, not assumed: the first one takes it, but on
    a starved machine it may miss its renewals for longer than the 6 s Lease and the other takes it over
    (correctly) before the burst is placed."""
    c = cluster
    await _limited_cluster(c)
    first = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3")
    await wait_for(lambda: holds(c, first), timeout=60)
    second = await operator_factory(ENERGAIZER_BATCH_WINDOW_SECONDS="0.3")
    await wait_for(lambda: "candidate for the Lease" in second.log(), timeout=60)

    bodies = _burst(120, seed=5)
    names = [b["metadata"]["name"] for b in bodies]
    for body in bodies[:80]:
        await c.create(body)
    await wait_for(lambda: sum(c.phase(n) == "Placed" for n in names) >= 5, timeout=90, interval=0.02)
    # ... and leaves the AIJob gauges to the leader (one ServiceMonitor scrapes both: no series twice):
    # both replicas scraped while the Lease stayed with one of them
    for _ in range(10):
        held = tenure(c)
        leader, standby = (first, second) if holds(c, first) else (second, first)
        led = await metrics_when(
            leader.metrics_port, lambda t, held=held: placed_gauge(t) >= 5 or tenure(c) != held, timeout=90
        )
        standing_by = await metrics_when(
            standby.metrics_port,
            lambda t, held=held: "energaizer_leader 0.0" in t or tenure(c) != held,
            timeout=60,
        )
        if tenure(c) == held and holds(c, leader):
            break
    else:
        raise AssertionError("the Lease changed hands during each of 10 scrapes")
    assert placed_gauge(led) >= 5
    assert "energaizer_leader 0.0" in standing_by and "energaizer_aijobs{" not in standing_by
    assert "energaizer_predicted_energy_joules{" not in standing_by
    for op in (first, second):  # a replica wrote nothing before it led
        assert not writes_before_leading(op.log()), writes_before_leading(op.log())[:3]
    await leader.stop(signal.SIGKILL)
    for body in bodies[80:]:
        await c.create(body)
    await wait_for(lambda: holds(c, standby), timeout=60)
    # its indices were warm: as leader it exports the AIJobs placed before it took over
    await metrics_when(standby.metrics_port, lambda t: "energaizer_leader 1.0" in t, timeout=60)
    leading = await metrics_when(standby.metrics_port, lambda t: placed_gauge(t) >= 5, timeout=90)
    assert "energaizer_predicted_energy_joules{" in leading
    await wait_for(lambda: all(c.phase(n) in SETTLED for n in names), timeout=120, interval=0.5)

    assert_settled_consistently(c, names, [first.log(), second.log()])
    placed = {n for n in names if c.phase(n) == "Placed"}
    assert set(c.jobs()) == placed
    # A second create of a name can only be a 409 that the new leader adopted, never a second Job.
    assert {n for n in c.job_creates() if n in c.jobs()} == placed
    assert await standby.stop() == 0


async def test_a_slow_renewal_counts_from_when_it_was_sent(monkeypatch):
    """The API server answers the renewal 5 s late (6 s Lease): the Lease it wrote runs from the
    renewTime sent, so the standbys see it expire 6 s after the sending; the leader must have stopped
    writing by then, not 6 s after the late answer (two leaders meanwhile). Each Lease call has a timeout
    shorter than the Lease (an unanswered call must not outlast it)."""
    from energaizer_operator import kube, leader
    from energaizer_operator.settings import OperatorSettings

    now = [1000.0]
    timeouts: list[float | None] = []
    monkeypatch.setattr(leader.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(kube, "current_namespace", lambda: "default")

    def read_lease(namespace, name, timeout=None):
        timeouts.append(timeout)
        return {"metadata": {"resourceVersion": "1"}, "spec": {}}

    def patch_lease(namespace, name, body, timeout=None):
        timeouts.append(timeout)
        now[0] += 5.0  # answered 5 s after it was sent
        return {}

    monkeypatch.setattr(kube, "read_lease", read_lease)
    monkeypatch.setattr(kube, "patch_lease", patch_lease)
    election = leader.LeaderElection(OperatorSettings(lease_duration_seconds=6), identity="me")
    task = asyncio.get_running_loop().create_task(election.run())
    try:
        await wait_for(lambda: election.leading, timeout=30, interval=0.01)
    finally:
        task.cancel()
    now[0] = 1000.0 + 6  # the Lease as written (renewTime sent at 1000) has expired for the standbys
    assert not election.holds()
    assert timeouts and all(t is not None and t <= 6 / 3 for t in timeouts), timeouts
