"""The operator's startup and cleanup handlers, in process: cleanup stops every task startup began.

kopf waits up to 5 s on exit for any task still running after its cleanup handlers ("hung tasks"), so a
task startup leaves behind delays every shutdown: a rolling update, a leader handing over, each test's
operator stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import kopf
from energaizer_operator import handlers
from energaizer_operator.settings import OperatorSettings
from energaizer_operator.state import OperatorState
from operator_testkit import connection_refused, free_port, wait_for


async def start(memo: kopf.Memo) -> None:
    """The operator's startup handler with empty indices (every index it takes)."""
    empty: dict = {}
    await handlers.startup(
        settings=kopf.OperatorSettings(),
        memo=memo,
        gpu_nodes=empty,
        gpu_pods=empty,
        steered_jobs=empty,
        aijob_records=empty,
        measure_pods=empty,
        measure_jobs=empty,
        measure_candidates=empty,
    )


async def test_cleanup_leaves_no_task_that_startup_began():
    settings = OperatorSettings(leader_election=False, metrics_port=0, health_port=free_port())
    memo = kopf.Memo()
    memo["state"] = OperatorState(settings)
    before = asyncio.all_tasks()
    await start(memo)
    began = asyncio.all_tasks() - before
    # the health server's heartbeat, the relist of the indexed kinds (relist.py)
    assert {t.get_name() for t in began} == {"heartbeat", "relist"}
    await handlers.cleanup(memo=memo)
    assert all(t.done() for t in began)


async def test_cleanup_stops_both_servers_at_once_off_the_event_loop():
    """Each server's ``shutdown()`` waits for its thread to notice (up to 0.5 s): called one after the
    other on the event loop, they held it up for up to 1 s on every stop. Here each shutdown waits until
    the test, a coroutine on the loop, has seen both of them under way: only servers stopped concurrently
    and off the loop get there (sequential calls on the loop each give up waiting and the check fails)."""
    settings = OperatorSettings(leader_election=False, metrics_port=free_port(), health_port=free_port())
    memo = kopf.Memo()
    state = memo["state"] = OperatorState(settings)
    await start(memo)
    entered: list[str] = []
    released = threading.Event()
    seen_together: list[bool] = []

    def waiting(name: str, shutdown: Callable[[], None]) -> Callable[[], None]:
        def wrapped() -> None:
            entered.append(name)
            seen_together.append(released.wait(timeout=10))
            shutdown()

        return wrapped

    state.metrics_server.shutdown = waiting("metrics", state.metrics_server.shutdown)
    state.health.shutdown = waiting("health", state.health.shutdown)
    cleanup = asyncio.create_task(handlers.cleanup(memo=memo))
    await wait_for(lambda: len(entered) == 2 or cleanup.done(), timeout=60, interval=0.01)
    released.set()
    await cleanup
    assert sorted(entered) == ["health", "metrics"] and seen_together == [True, True]
    assert connection_refused("127.0.0.1", settings.health_port)
