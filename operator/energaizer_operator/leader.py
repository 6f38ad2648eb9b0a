"""Leader election between replicas with a ``coordination.k8s.io/v1`` Lease (as client-go does).

Every replica watches the cluster and keeps its indices warm; only the holder of the Lease writes
(estimates, placements, Jobs, the Job mirror). The holder renews the Lease every
``lease_duration / 3``; the others try every ``lease_duration / 3`` and take it over once
``renewTime + leaseDurationSeconds`` has passed. Every write to the Lease carries the
``metadata.resourceVersion`` it was read at, so two candidates cannot both win (409 Conflict for the
slower one). A leader that cannot renew within ``lease_duration`` stops writing (steps down).

A renewal counts from the moment it was sent (the ``renewTime`` it writes), not from its answer: a
slow API server cannot make the leader believe in a Lease that the standbys already see expired.
Each Lease call gives up after ``lease_duration / 3`` (a renewal is read + write), so a leader whose
calls go unanswered retries, and steps down in time, instead of waiting on a dead connection. The
Lease calls run in a thread of their own: the shared worker threads (``asyncio.to_thread``) can all be
waiting on the loops' writes to a slow API server, and a renewal queued behind them lost the Lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from energaizer_operator import kube
from energaizer_operator.constants import LEASE_NAME
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.leader")

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _format(t: datetime.datetime) -> str:
    return t.strftime(MICROTIME)


def _parse(value: Any) -> datetime.datetime | None:
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def default_identity() -> str:
    """The pod name (HOSTNAME) and the process id: a restarted container of the same pod (pid 1
    again) takes its own Lease back at once; two processes on one machine are two candidates."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


def expired(spec: dict[str, Any], now: datetime.datetime) -> bool:
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or renewed + datetime.timedelta(seconds=duration) < now


class LeaderElection:
    def __init__(
        self,
        settings: OperatorSettings,
        *,
        identity: str | None = None,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.namespace = kube.current_namespace()
        self.duration = settings.lease_duration_seconds
        self.identity = identity or default_identity()
        self.clock = clock
        self.leading = False
        self._last_renew = 0.0  # time.monotonic() when the last successful renewal was sent
        self.timeout = self.duration / 3  # per Lease call
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lease")

    async def run(self) -> None:
        logger.info("%s: candidate for the Lease %s/%s", self.identity, self.namespace, LEASE_NAME)
        while True:
            sent = time.monotonic()  # no later than the renewTime written: the Lease runs from there
            try:
                leading = await self._call(self.try_acquire_or_renew)
                if leading:
                    self._last_renew = sent
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # API unreachable: keep leading only while the Lease is ours
                logger.warning("could not renew the leader Lease: %s", exc)
                leading = self.leading and time.monotonic() - self._last_renew < self.duration
            self._set(leading)
            await asyncio.sleep(self.duration / 3)

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def holds(self) -> bool:
        """Leading, and renewed recently enough that no standby can have taken the Lease over yet."""
        return self.leading and time.monotonic() - self._last_renew < self.duration * 2 / 3

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            logger.info("%s: %s", self.identity, "leading" if leading else "standing by")

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = kube.read_lease(self.namespace, LEASE_NAME, self.timeout)
        except kube.ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder not in (None, "", self.identity) and not expired(spec, now):
            return False
        body: dict[str, Any] = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "spec": {
                "holderIdentity": self.identity,
                "renewTime": _format(now),
                "leaseDurationSeconds": round(self.duration),
            },
        }
        if holder != self.identity:
            body["spec"]["acquireTime"] = _format(now)
            body["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            kube.patch_lease(self.namespace, LEASE_NAME, body, self.timeout)
        except kube.ApiException as exc:
            if exc.status == 409:  # another replica wrote it first
                return False
            raise
        return True

    def _create(self, now: datetime.datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "acquireTime": _format(now),
                "renewTime": _format(now),
                "leaseDurationSeconds": round(self.duration),
                "leaseTransitions": 0,
            },
        }
        try:
            kube.create_lease(self.namespace, body, self.timeout)
        except kube.ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def release(self) -> None:
        """On a clean shutdown (after ``run`` was cancelled): give the Lease up so that a standby takes
        over at once."""
        try:
            if self.leading:
                self.leading = False
                await self._call(self._release)
        except Exception as exc:
            logger.warning("could not release the leader Lease: %s", exc)
        finally:
            self._thread.shutdown(wait=False)

    def _release(self) -> None:
        lease = kube.read_lease(self.namespace, LEASE_NAME, self.timeout)
        if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
            rv = (lease.get("metadata") or {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": None, "renewTime": None}}
            kube.patch_lease(self.namespace, LEASE_NAME, body, self.timeout)
