"""Relisting: the indexed objects that were deleted while a watch was down.

kopf (1.45) keeps its indices from watch events. When a watch ends with ``410 Gone`` (the API server
compacted the resourceVersion it would resume from), kopf lists the objects again and indexes what
that list holds, but it never drops the entries whose objects the new list no longer has: an index
entry is discarded only on a ``DELETED`` event, and the events of the objects deleted meanwhile are
gone with the compacted history. A pod deleted during an API outage would hold its GPUs in the
capacity view until a restart (an AIJob waiting for them stays Unschedulable); a deleted Job would
hold its AIJob's GPUs, a deleted AIJob its metrics.

Every ``ENERGAIZER_RELIST_INTERVAL_SECONDS`` each replica (the standby's view must be right when it
takes over) lists the uids of the indexed kinds in the watched namespaces, with the operator's own
API client: paged (``limit``/``continue``), metadata only, read from etcd (never an older cache). An
index entry is gone when its uid was in the index *before* the list request was sent and the list
does not have it (:func:`gone_uids`): an object created after the list was taken is not in that
snapshot, so it is never dropped, however late its watch event comes. kopf's index is read-only to
the operator: the gone uids are left out where the loops read the indices
(:meth:`~energaizer_operator.loops.Indices.live`) and where the measurement reads its own indices of
the same kinds (``Indices.more``: ``measure_pods``, ``measure_jobs``, ``measure_candidates``, whose
uids are checked too); uids are never reused, so a uid once found gone
stays gone (until kopf's index no longer holds it). A list that fails leaves that kind as it was
until the next pass. A gone AIJob's per-AIJob metrics are removed, unless a live AIJob has its name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import urllib3

from energaizer_operator import kube
from energaizer_operator.constants import GROUP, PLURAL, VERSION
from energaizer_operator.loops import Indices, index_values
from energaizer_operator.metrics import Metrics
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.relist")


def collection_paths(kind: str, namespaces: Iterable[str]) -> list[str]:
    """The API paths that list every object of an indexed ``kind`` the operator watches: one per
    watched namespace, or one cluster-wide (nodes are cluster-scoped)."""
    prefix = {
        "nodes": "/api/v1",
        "pods": "/api/v1",
        "jobs": "/apis/batch/v1",
        "aijobs": f"/apis/{GROUP}/{VERSION}",
    }[kind]
    plural = PLURAL if kind == "aijobs" else kind
    namespaces = sorted(set(namespaces))
    if kind == "nodes" or not namespaces:
        return [f"{prefix}/{plural}"]
    return [f"{prefix}/namespaces/{ns}/{plural}" for ns in namespaces]


def gone_uids(indexed_before: Collection[str], listed: Collection[str]) -> set[str]:
    """The uids deleted behind the index: in it before the list request was sent, and not listed. An
    object created after that (listed or not, indexed or not) is never among them."""
    return set(indexed_before) - set(listed)


class Relister:
    """The periodic relist of :mod:`energaizer_operator.relist` (one per replica)."""

    KINDS = ("nodes", "pods", "jobs", "aijobs")  # the attributes of Indices

    def __init__(
        self,
        settings: OperatorSettings,
        metrics: Metrics,
        indices: Indices,
        *,
        list_uids: Callable[[str], set[str]] = kube.list_uids,
    ) -> None:
        self.settings, self.metrics, self.indices = settings, metrics, indices
        self.list_uids = list_uids

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.relist_interval_seconds)
            try:
                await self.relist()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kube.log_failure(
                    logger, exc, "relist failed; trying again in %s s", self.settings.relist_interval_seconds
                )

    def _uids(self, kind: str) -> set[str]:
        indices: list[Mapping[Any, Iterable[Any]]] = [getattr(self.indices, kind)]
        indices += self.indices.more.get(kind, ())
        return {uid for index in indices for v in index_values(index) if (uid := getattr(v, "uid", ""))}

    async def _listed(self, kind: str) -> set[str] | None:
        listed: set[str] = set()
        for path in collection_paths(kind, self.settings.namespaces):
            try:
                listed |= await asyncio.to_thread(self.list_uids, path)
            except (kube.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                why = getattr(exc, "status", None) or type(exc).__name__
                logger.warning("relist: listing %s failed (%s); trying again in the next pass", path, why)
                return None
        return listed

    async def relist(self) -> set[str]:
        """One pass; returns the uids newly found gone."""
        deleted = self.indices.deleted
        found: set[str] = set()
        indexed: set[str] = set()
        for kind in self.KINDS:
            before = self._uids(kind)  # strictly before the list request is sent (the guard)
            if not before - deleted.uids - found:
                indexed |= before
                continue  # nothing that could be gone: no list
            listed = await self._listed(kind)
            indexed |= before | self._uids(kind)
            if listed is None:
                continue
            gone = gone_uids(before, listed)
            if gone - deleted.uids:
                logger.info(
                    "relist: %d %s deleted while a watch was down are dropped", len(gone - deleted.uids), kind
                )
            found |= gone
        new = found - deleted.uids
        # uids are never reused: a uid found gone stays gone while kopf's index holds it
        deleted.uids = frozenset((deleted.uids | found) & indexed)
        self._forget_aijobs(new)
        return new

    def _forget_aijobs(self, uids: set[str]) -> None:
        if not uids:
            return
        records = index_values(self.indices.aijobs)
        live = {(r.namespace, r.name) for r in records if r.uid not in self.indices.deleted.uids}
        for r in records:
            if r.uid in uids and (r.namespace, r.name) not in live:
                self.metrics.forget(r.namespace, r.name)
                self.metrics.forget_measured(r.namespace, r.name)
