"""The operator's one shared state object (kept in kopf's memo as ``memo.state``).

kopf shallow-copies its memo for every watched object; the state object itself is shared, so the
loops, the metrics and the handlers all see the same one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from energaizer_operator.loops import DeletedObjects
from energaizer_operator.metrics import Metrics
from energaizer_operator.records import SpecCache
from energaizer_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from energaizer_operator.estimating import EstimateLoop
    from energaizer_operator.health import HealthServer
    from energaizer_operator.leader import LeaderElection
    from energaizer_operator.placer import Placer


@dataclass
class OperatorState:
    settings: OperatorSettings
    metrics: Metrics = field(default_factory=Metrics)
    specs: SpecCache = field(default_factory=SpecCache)
    deleted: DeletedObjects = field(default_factory=DeletedObjects)  # relist.py: gone, still indexed
    placer: Placer | None = None
    estimator: EstimateLoop | None = None
    health: HealthServer | None = None
    election: LeaderElection | None = None
    metrics_server: Any = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def is_leader(self) -> bool:
        """Whether this replica may write (always, without leader election)."""
        return self.election is None or self.election.holds()

    started: bool = False

    def start(self, *loops: Any) -> None:
        """Start the loops once. Call it from a kopf handler: events are posted from its context."""
        if not self.started:
            self.started = True
            self.tasks += [asyncio.create_task(loop.run(), name=type(loop).__name__) for loop in loops]

    @property
    def failed(self) -> bool:
        """A loop ended (it only ends by an unexpected exception): the liveness probe fails."""
        return any(t.done() for t in self.tasks)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
