"""The operator's startup and cleanup handlers, in process: cleanup stops every task startup began.

kopf waits up to 5 s on exit for any task still running after its cleanup handlers ("hung tasks"), so a
task startup leaves behind delays every shutdown: a rolling update, a leader handing over, each test's
operator stop."""

from __future__ import annotations

import asyncio

import kopf
from energaizer_operator import handlers
from energaizer_operator.settings import OperatorSettings
from energaizer_operator.state import OperatorState
from operator_testkit import free_port


async def test_cleanup_leaves_no_task_that_startup_began():
    settings = OperatorSettings(leader_election=False, metrics_port=0, health_port=free_port())
    memo = kopf.Memo()
    memo["state"] = OperatorState(settings)
    before = asyncio.all_tasks()
    await handlers.startup(
        settings=kopf.OperatorSettings(),
        memo=memo,
        gpu_nodes={},
        gpu_pods={},
        steered_jobs={},
        aijob_records={},
        measure_pods={},
        measure_jobs={},
        measure_candidates={},
    )
    began = asyncio.all_tasks() - before
    # the health server's heartbeat, the relist of the indexed kinds (relist.py)
    assert {t.get_name() for t in began} == {"heartbeat", "relist"}
    await handlers.cleanup(memo=memo)
    assert all(t.done() for t in began)
