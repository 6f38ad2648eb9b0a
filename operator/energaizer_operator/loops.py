"""What the operator's loops share: the kopf indices they read, leadership, and the loop itself.

The loops read the indices through :meth:`Indices.live`, which leaves out the entries of objects that
:mod:`energaizer_operator.relist` found deleted behind kopf's back (kopf's index is read-only here).

A loop (:class:`~energaizer_operator.estimating.EstimateLoop`, :class:`~energaizer_operator.placer.Placer`)
runs ``tick`` every ``interval()`` seconds while this replica holds the Lease; a failed tick is
logged and retried in the next window, never the end of the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from energaizer_operator import kube
from energaizer_operator.inventory import NodeGPUs, PodGPUs, SteeredJob
from energaizer_operator.metrics import Metrics
from energaizer_operator.records import AIJobRecord
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.loops")
T = TypeVar("T")


def index_values(index: Mapping[Any, Iterable[Any]]) -> list[Any]:
    return [value for store in list(index.values()) for value in store]


class DeletedObjects:
    """The uids of indexed objects that are gone although kopf's index still holds them (deleted while
    a watch was down: kopf lists again after ``410 Gone`` but never drops what the new list lacks).
    :class:`~energaizer_operator.relist.Relister` replaces ``uids`` as a whole (readers see one set)."""

    def __init__(self) -> None:
        self.uids: frozenset[str] = frozenset()

    def live(self, values: Iterable[T]) -> list[T]:
        gone = self.uids
        return [v for v in values if getattr(v, "uid", "") not in gone] if gone else list(values)


class OtherPods:
    """The GPUs held by the pods of the namespaces the operator does not watch (not in the pod index):
    :class:`~energaizer_operator.other_pods.OtherPodsLister` replaces ``pods`` as a whole, and holds
    ``ready`` false until its first pass is over (the placer does not place on a view without them)."""

    def __init__(self) -> None:
        self.pods: tuple[PodGPUs, ...] = ()
        self.ready = True


@dataclass(frozen=True)
class Indices:
    """kopf's in-memory indices (``@kopf.index`` in handlers.py), by what they hold."""

    aijobs: Mapping[Any, Iterable[AIJobRecord]]
    nodes: Mapping[Any, Iterable[NodeGPUs]]
    pods: Mapping[Any, Iterable[PodGPUs]]
    jobs: Mapping[Any, Iterable[SteeredJob]]
    deleted: DeletedObjects = field(default_factory=DeletedObjects)
    # more kopf indices of these kinds (attribute name -> indices), whose entries the relist checks too:
    # the measured-energy ones (measured_handlers.py), which read them through ``deleted`` themselves
    more: Mapping[str, Sequence[Mapping[Any, Iterable[Any]]]] = field(default_factory=dict)
    others: OtherPods = field(default_factory=OtherPods)  # other_pods.py: pods of unwatched namespaces

    def live(self, index: Mapping[Any, Iterable[T]]) -> list[T]:
        """The values of one of these indices, less those of the objects known to be deleted."""
        return self.deleted.live(index_values(index))


class IndexLoop:
    def __init__(
        self,
        settings: OperatorSettings,
        metrics: Metrics,
        indices: Indices,
        *,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings, self.metrics, self.indices = settings, metrics, indices
        self.is_leader = is_leader

    def interval(self) -> float:
        raise NotImplementedError

    async def tick(self) -> Any:
        raise NotImplementedError

    def observe(self) -> None:
        """What a standby does instead of ``tick`` (keep its metrics current); nothing by default."""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval())
            if not self.is_leader():
                self.observe()
                continue
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kube.log_failure(
                    logger, exc, "%s: the batch failed; retrying in the next window", type(self).__name__
                )
