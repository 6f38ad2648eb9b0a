"""What the operator's loops share: the kopf indices they read, leadership, and the loop itself.

A loop (:class:`~energaizer_operator.estimating.EstimateLoop`, :class:`~energaizer_operator.placer.Placer`)
runs ``tick`` every ``interval()`` seconds while this replica holds the Lease; a failed tick is
logged and retried in the next window, never the end of the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from energaizer_operator.inventory import NodeGPUs, PodGPUs, SteeredJob
from energaizer_operator.metrics import Metrics
from energaizer_operator.records import AIJobRecord
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.loops")


def index_values(index: Mapping[Any, Iterable[Any]]) -> list[Any]:
    return [value for store in list(index.values()) for value in store]


@dataclass(frozen=True)
class Indices:
    """kopf's in-memory indices (``@kopf.index`` in handlers.py), by what they hold."""

    aijobs: Mapping[Any, Iterable[AIJobRecord]]
    nodes: Mapping[Any, Iterable[NodeGPUs]]
    pods: Mapping[Any, Iterable[PodGPUs]]
    jobs: Mapping[Any, Iterable[SteeredJob]]


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
            except Exception:
                logger.exception("%s: the batch failed; retrying in the next window", type(self).__name__)
