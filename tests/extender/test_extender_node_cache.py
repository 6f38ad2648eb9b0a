"""Black box, ``NodeNames`` form (nodeCacheCapable: true): the extender's own node cache, watched from
the kmock API, maps node names to GPU types; nodes added later are picked up by the watch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from extender_support import PRODUCTS, ExtenderProcess, args_with_names, node, pod, request, workload
from kmock_support import RealisticEmulator

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


async def poll(pred, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {pred.__name__}")
        await asyncio.sleep(0.2)


async def test_node_names_are_scored_and_filtered_from_the_node_cache(kmock: Any, tmp_path: Path) -> None:
    kmock.resources.load_bundled()
    url = str(kmock.url).rstrip("/")
    for body in (node("h100-a", PRODUCTS["h100-sxm"]), node("l4-a", PRODUCTS["l4"]), node("cpu-0", None)):
        resp = await kmock.post("/api/v1/nodes", json=body)
        assert resp.status in (200, 201)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: mock, cluster: {{server: "{url}"}}}}]
users: [{{name: u, user: {{token: dummy}}}}]
contexts: [{{name: mock, context: {{cluster: mock, user: u}}}}]
current-context: mock
"""
    )
    ext = await asyncio.to_thread(ExtenderProcess, tmp_path, env={"KUBECONFIG": str(kubeconfig)})
    try:
        await poll(lambda: request(ext.port, "/readyz")[0] == 200)
        big = pod("big", workload("qwen3-32b", requests=500, batch_size=8))
        names = ["h100-a", "l4-a", "cpu-0", "not-a-node"]
        status, answer = await asyncio.to_thread(
            request, ext.port, "/scheduler/filter", args_with_names(big, names)
        )
        assert status == 200 and answer["Error"] == ""
        assert answer["NodeNames"] == ["h100-a", "cpu-0", "not-a-node"] and answer["Nodes"] is None
        assert set(answer["FailedNodes"]) == {"l4-a"} and "does not fit" in answer["FailedNodes"]["l4-a"]

        # A node that joins later is seen through the watch.
        resp = await kmock.post("/api/v1/nodes", json=node("a100-a", PRODUCTS["a100-sxm4-80gb"]))
        assert resp.status in (200, 201)
        body = args_with_names(big, ["h100-a", "a100-a", "l4-a"])

        def a100_scored() -> dict[str, int] | None:
            status, answer = request(ext.port, "/scheduler/prioritize", body)
            got = {x["Host"]: x["Score"] for x in answer} if status == 200 else {}
            return got if got.get("a100-a", 0) > 0 else None

        got = await poll(a100_scored)
        assert got["l4-a"] == 0 and max(got["h100-a"], got["a100-a"]) == 10
        assert ext.alive()
    finally:
        await asyncio.to_thread(ext.stop)
