"""Black box, ``NodeNames`` form (nodeCacheCapable: true): the extender's own node cache, watched from
the kmock API, maps node names to GPU types; nodes added later are picked up by the watch; the list is
read in pages, as a large cluster's must be; the KubeSchedulerConfiguration the chart renders calls what
the extender it deploys serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import MANIFESTS, load_script
from energaizer_operator import kube
from energaizer_operator.extender import node_cache
from energaizer_operator.extender.node_cache import MAX_BACKOFF_SECONDS, NodeCache
from extender_support import (
    PRODUCTS,
    ExtenderProcess,
    args_with_names,
    free_port,
    node,
    pod,
    request,
    scores,
    workload,
)
from kmock_support import RealisticEmulator
from operator_testkit import SocketServer, use_kube_api, write_kubeconfig

pytestmark = pytest.mark.kmock(cls=RealisticEmulator)


class PagingEmulator(RealisticEmulator):
    """Lists as the API server pages them: with ``limit`` at most that many items (and at most
    ``PAGE``, as a server may return fewer) and a ``continue`` token for the rest; without, all at once."""

    PAGE = 2

    async def _serve_list(self, request):
        result = await super()._serve_list(request)
        if "limit" not in request.params:
            return result
        items = sorted(result["items"], key=lambda o: o["metadata"]["name"])
        start = int(request.params.get("continue") or 0)
        end = start + min(int(request.params["limit"]), self.PAGE)
        result["items"] = items[start:end]
        if end < len(items):
            result["metadata"]["continue"] = str(end)
            result["metadata"]["remainingItemCount"] = len(items) - end
        return result


async def poll(pred, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {pred.__name__}")
        await asyncio.sleep(0.2)


async def start_extender(
    kmock: Any,
    tmp_path: Path,
    nodes: list[dict[str, Any]],
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> ExtenderProcess:
    """The real extender process (``args`` after ``extender``) with its node cache on the kmock API
    holding ``nodes``."""
    kmock.resources.load_bundled()
    url = str(kmock.url).rstrip("/")
    for body in nodes:
        resp = await kmock.post("/api/v1/nodes", json=body)
        assert resp.status in (200, 201)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    env = (env or {}) | {"KUBECONFIG": str(kubeconfig)}
    return await asyncio.to_thread(ExtenderProcess, tmp_path, *args, env=env, port=port)


async def test_node_names_are_scored_and_filtered_from_the_node_cache(kmock: Any, tmp_path: Path) -> None:
    nodes = [node("h100-a", PRODUCTS["h100-sxm"]), node("l4-a", PRODUCTS["l4"]), node("cpu-0", None)]
    ext = await start_extender(kmock, tmp_path, nodes)
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


@pytest.mark.kmock(cls=PagingEmulator)
async def test_the_node_list_is_read_in_pages(kmock: Any, tmp_path: Path) -> None:
    """A 5,000-node list read whole peaks at several hundred MB in the extender (past the chart's 512 Mi
    limit) and holds the GIL while it decodes: every list request asks for a page, and the nodes of every
    page, the last included, are known."""
    types = ["h100-sxm", "a100-sxm4-80gb", "l4", "h100-sxm", "l4"]
    nodes = [node(f"n{i}", PRODUCTS[t]) for i, t in enumerate(types)]
    ext = await start_extender(kmock, tmp_path, nodes)
    try:
        await poll(lambda: request(ext.port, "/readyz")[0] == 200)
        lists = [
            s.params
            for s in kmock.journal
            if s.method.upper().endswith("GET") and s.path == "/api/v1/nodes" and "watch" not in s.params
        ]
        assert lists and all(0 < int(p.get("limit", 0)) <= 1000 for p in lists), lists
        assert [p.get("continue") for p in lists[:3]] == [None, "2", "4"]
        got = scores(ext.port, args_with_names(pod("chat", workload()), [f"n{i}" for i in range(len(types))]))
        best = max(got.values())
        assert best == 10 and all(got[f"n{i}"] == got[f"n{types.index(t)}"] for i, t in enumerate(types))
        assert got["n4"] > 0  # on the last page
    finally:
        await asyncio.to_thread(ext.stop)


async def test_the_charts_scheduler_configuration_calls_what_its_extender_serves(
    kmock: Any, tmp_path: Path
) -> None:
    """Render the chart (custom GPU label, resource and product map), run the extender as its Deployment
    does, and call it as kube-scheduler's HTTP extender client would from the rendered extenders entry:
    POST urlPrefix + "/" + verb, NodeNames when nodeCacheCapable, for a pod requesting a managedResource."""
    port = free_port()
    values = {
        "scheduler": {"enabled": True},
        "extender": {"port": port},
        "gpu": {
            "productLabel": "example.com/accelerator-model",
            "resource": "example.com/accelerator",
            "productMap": {"ACME-X1000": "h100-sxm"},
        },
    }
    objects = load_script(MANIFESTS / "generate.py").render_chart(values)
    find = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    config = yaml.safe_load(find["ConfigMap", "energaizer-scheduler-config"]["data"]["config.yaml"])
    (entry,) = config["extenders"]
    container = find["Deployment", "energaizer-extender"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    product_map = tmp_path / "product-map.yaml"
    product_map.write_text(find["ConfigMap", "energaizer-product-map"]["data"]["product-map.yaml"])
    env["ENERGAIZER_PRODUCT_MAP"] = f"@{product_map}"
    label = env["ENERGAIZER_GPU_PRODUCT_LABEL"]
    nodes = []
    for name, product in (("acme-0", "ACME-X1000"), ("l4-0", PRODUCTS["l4"]), ("plain-0", None)):
        n = node(name, None)
        if product:
            n["metadata"]["labels"][label] = product
        nodes.append(n)
    assert container["command"] == ["energaizer"] and container["args"][0] == "extender"
    ext = await start_extender(kmock, tmp_path, nodes, *container["args"][1:], env=env, port=port)
    try:
        await poll(lambda: request(ext.port, "/readyz")[0] == 200)
        url = urllib.parse.urlsplit(entry["urlPrefix"])
        assert url.scheme == "http" and not entry["enableHTTPS"] and url.port == port
        big = pod("big", workload("qwen3-32b", requests=500, batch_size=8))
        (managed,) = entry["managedResources"]
        resources = big["spec"]["containers"][0]["resources"]
        resources["limits"] = {managed["name"]: "1"}  # what kube-scheduler sends the extender (IsInterested)
        names = [n["metadata"]["name"] for n in nodes]
        body = {"Pod": big, "Nodes": None, "NodeNames": names}
        assert entry["nodeCacheCapable"] is True and entry["ignorable"] is True
        answers = {}
        for verb in (entry["filterVerb"], entry["prioritizeVerb"]):
            path = url.path.rstrip("/") + "/" + verb  # HTTPExtender.send
            status, answers[verb] = await asyncio.to_thread(request, port, path, body)
            assert status == 200, (path, answers[verb])
        passed = answers[entry["filterVerb"]]
        assert passed["Error"] == "" and passed["NodeNames"] == ["acme-0", "plain-0"]
        assert set(passed["FailedNodes"]) == {"l4-0"}
        scored = {h["Host"]: h["Score"] for h in answers[entry["prioritizeVerb"]]}
        assert scored == {"acme-0": 10, "l4-0": 0, "plain-0": 0}
    finally:
        await asyncio.to_thread(ext.stop)


class FakeNodeAPI:
    """Lists ``nodes``; each watch follows ``watches`` in turn: a list of events to send, then the end of
    the stream (a dict with type ERROR is sent as the API server sends 410 Gone), or an exception to raise."""

    def __init__(self, nodes: dict[str, str | None], watches: list[Any], lists_fail: int = 0) -> None:
        self.nodes = nodes
        self.watches = watches
        self.lists_fail = lists_fail
        self.lists = 0

    def list_page(self, token: str | None) -> dict[str, Any]:
        self.lists += 1
        if self.lists <= self.lists_fail:
            raise ConnectionError("connection refused")
        return {"metadata": {"resourceVersion": "1"}, "items": [node(n, p) for n, p in self.nodes.items()]}

    def watch(self, version: str) -> Any:
        step = self.watches.pop(0) if self.watches else [gone()]
        if isinstance(step, Exception):
            raise step
        yield from step


def gone() -> dict[str, Any]:
    return {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}


def modified(name: str, product: str | None) -> dict[str, Any]:
    return {
        "type": "MODIFIED",
        "object": node(name, product) | {"metadata": {"name": name, "resourceVersion": "2"}},
    }


def run_cache(api: FakeNodeAPI, waits: int) -> tuple[NodeCache, list[float]]:
    """Run the cache in this thread until it has waited ``waits`` times; the back-offs it waited."""
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) >= waits:
            cache.stop()

    cache = NodeCache("nvidia.com/gpu.product", api=lambda: api, sleep=sleep)
    cache.run()
    return cache, delays


def test_the_backoff_resets_after_a_healthy_watch() -> None:
    """API servers end watches every 5-10 min and a resumed one may get 410 Gone: after a watch that worked,
    the relist waits the shortest back-off again. It doubled forever before, so after five routine expiries
    every later one left the node map 30 s stale."""
    n = 8
    healthy = [[modified("a", PRODUCTS["l4"]), gone()] for _ in range(n)]
    api = FakeNodeAPI({"a": PRODUCTS["h100-sxm"]}, healthy)
    cache, delays = run_cache(api, n)
    assert delays == [1.0] * n and api.lists == n
    assert cache.synced.is_set()

    # a watch that ran to its timeout (no event) worked too; one that failed at once did not
    watches = [[], [gone()], [gone()], [], [gone()]]
    _, delays = run_cache(FakeNodeAPI({"a": None}, watches), 3)
    assert delays == [1.0, 2.0, 1.0]


def test_a_failing_api_backs_off_doubling_to_the_cap() -> None:
    """Lists refused, then watches refused right after a good list: neither is a healthy watch, so the
    back-off doubles up to MAX_BACKOFF_SECONDS; the first healthy watch brings it back to 1 s."""
    api = FakeNodeAPI({"a": None}, [], lists_fail=7)
    _, delays = run_cache(api, 7)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS]

    watches = [PermissionError("forbidden")] * 3 + [[modified("a", None), gone()]]
    api = FakeNodeAPI({"a": None}, watches, lists_fail=2)
    _, delays = run_cache(api, 6)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 1.0]


class StubAPIServer(SocketServer):
    """A Node API on 127.0.0.1 for the extender's own client (KubeNodeAPI). Lists are answered with one node
    at resourceVersion 7, but for the numbers in ``silent_lists`` (from 1), left unanswered. The watches send
    ``watches`` in turn, each a stream of events that then ends; after those, a watch gets its head and then
    nothing, not even the end its ``timeoutSeconds`` asks for (an API server gone silent without resetting
    its connections). ``lists``: list requests; ``watched``: each watch's query."""

    def __init__(
        self, silent_lists: Iterable[int] = (), watches: Iterable[list[dict[str, Any]]] = ()
    ) -> None:
        self.silent_lists = set(silent_lists)
        self.watches = list(watches)
        self.lists = 0
        self.watched: list[dict[str, list[str]]] = []
        super().__init__()

    def serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)  # a GET: no body
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(head.split(b" ")[1].decode()).query)
                if query.get("watch") == ["true"]:
                    self.watched.append(query)
                    stream = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    if self.watches:
                        for event in self.watches.pop(0):
                            line = json.dumps(event).encode() + b"\n"
                            stream += b"%x\r\n%s\r\n" % (len(line), line)
                        stream += b"0\r\n\r\n"
                    conn.sendall(stream)
                    continue
                self.lists += 1
                if self.lists in self.silent_lists:
                    continue
                body = json.dumps(
                    {
                        "kind": "NodeList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "7"},
                        "items": [node("h100-a", PRODUCTS["h100-sxm"])],
                    }
                ).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % len(body)
                    + body
                )


def run_cache_on(server: StubAPIServer, failures: int) -> tuple[NodeCache, list[int]]:
    """Run a node cache with its real client on ``server`` until its ``failures``-th failure (no back-off
    waits); the number of lists at each failure. At most 120 s: a bound on a test that fails."""
    lists_at_failures: list[int] = []

    def sleep(seconds: float) -> None:
        lists_at_failures.append(server.lists)
        if len(lists_at_failures) == failures:
            cache.stop()

    cache = NodeCache("nvidia.com/gpu.product", sleep=sleep)
    runner = threading.Thread(target=cache.run, daemon=True)
    runner.start()
    runner.join(120)
    cache.stop()
    assert not runner.is_alive(), f"the node cache still waits on the API server ({server.lists} lists)"
    return cache, lists_at_failures


@pytest.fixture
def stub_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StubAPIServer]]:
    """``stub_api(...)``: a :class:`StubAPIServer` that kube.py's client (the node cache's) talks to, with a
    1 s API timeout and 1 s watches."""
    servers: list[StubAPIServer] = []

    def start(**kwargs: Any) -> StubAPIServer:
        server = StubAPIServer(**kwargs)
        servers.append(server)
        use_kube_api(f"http://127.0.0.1:{server.port}", tmp_path, monkeypatch)
        monkeypatch.setattr(kube, "_request_timeout_seconds", 1.0)
        monkeypatch.setattr(node_cache, "WATCH_TIMEOUT_SECONDS", 1)
        return server

    yield start
    for server in servers:
        server.close()


def test_an_api_server_gone_silent_is_given_up_on_and_relisted(stub_api) -> None:
    """The list and the watch of the extender's own client (KubeNodeAPI) to an API server that stopped
    answering without resetting the connection: each gives up (the list after the API timeout, the watch after
    its timeoutSeconds and the API timeout more) and the cache relists. Without client-side timeouts the first
    list waited for ever: the cache never synced (readyz 503 for good), and a watch that went silent kept the
    node map frozen for ever."""
    server = stub_api(silent_lists={1})
    cache, lists_at_failures = run_cache_on(server, 3)
    # the unanswered list failed, then each watch after an answered list: every failure relisted
    assert lists_at_failures == [1, 2, 3]
    assert cache.synced.is_set() and cache.product("h100-a") == PRODUCTS["h100-sxm"]


def test_the_extender_takes_its_api_timeout_from_the_settings(tmp_path: Path) -> None:
    """ENERGAIZER_API_TIMEOUT_SECONDS bounds the extender's node-cache calls as it bounds the operator's:
    the first list, sent to an API server that never answers it, gives up after 1 s here and the relist
    syncs the cache (readyz 200). The extender ignored the setting: that list waited for the default 30 s,
    and the scheduler got 503 from readyz meanwhile."""
    server = StubAPIServer(silent_lists={1})
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.port}")
        env = {"KUBECONFIG": str(kubeconfig), "ENERGAIZER_API_TIMEOUT_SECONDS": "1"}
        ext = ExtenderProcess(tmp_path, env=env)
        try:
            deadline = time.monotonic() + 20  # the default timeout is 30 s
            while request(ext.port, "/readyz")[0] != 200:
                assert time.monotonic() < deadline, f"not ready ({server.lists} lists):\n{ext.log()}"
                time.sleep(0.2)
            assert server.lists >= 2  # the unanswered list given up, then one answered
        finally:
            ext.stop()
    finally:
        server.close()


def test_the_real_clients_watch_events(stub_api, caplog: pytest.LogCaptureFixture) -> None:
    """Through the real client: a watch asks for bookmarks (a quiet cluster's watch resumes from a current
    resourceVersion, not one compacted away meanwhile: a 410 Gone and a relist at each expiry); a node added
    by a watch is known; the next watch resumes from the last event's resourceVersion, a bookmark's included;
    a watch's ERROR event (410 Gone) relists, logged with the API server's message. The client's own
    Watch().stream(deserialize=False) raised KeyError('raw_object') at an ERROR event, logged as "'raw_object'"."""
    bookmark = {
        "type": "BOOKMARK",
        "object": {"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}},
    }
    added = {"type": "ADDED", "object": node("l4-a", PRODUCTS["l4"])}
    added["object"]["metadata"]["resourceVersion"] = "8"
    server = stub_api(watches=[[added, bookmark], [gone()]])
    cache, lists_at_failures = run_cache_on(server, 2)
    assert [w.get("resourceVersion") for w in server.watched] == [["7"], ["9"], ["7"]]
    assert all(w.get("allowWatchBookmarks") == ["true"] for w in server.watched), server.watched
    assert lists_at_failures == [1, 2]  # the 410 after the first list; the watch after the relist went silent
    failures = [
        r.getMessage()
        for r in caplog.records
        if r.name == "energaizer_operator.extender" and r.levelname == "WARNING"
    ]
    assert "too old resource version" in failures[0], failures
    assert cache.product("l4-a") is None  # the relist's answer: h100-a alone
    assert cache.product("h100-a") == PRODUCTS["h100-sxm"]
