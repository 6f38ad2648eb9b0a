"""Node name -> GPU product label, kept current by a list + watch of the API's Nodes.

kube-scheduler sends only node names when the extender is configured ``nodeCacheCapable: true``;
this cache answers which GPU product each one carries. It runs in one background thread with the
official client (in-cluster service account, else the current kubeconfig). The list is read in pages
of :data:`LIST_PAGE_SIZE` Nodes, so that memory and the time the JSON decoding holds the GIL (stalling
requests) stay bounded by a page however large the cluster: a whole 5,000-node list at once peaks at
several hundred MB, past the chart's memory limit. A lost watch resumes from the last resourceVersion; a
410 Gone or any other error relists after a back-off: 1 s, doubling after each failure up to 30 s, and back
to 1 s once a watch has worked (delivered an event or ran to its timeout), as client-go's reflector resets
its back-off after a healthy watch: API servers end watches routinely, and a back-off that never reset would
leave every later relist 30 s behind. Until the first list has arrived every node is
unknown, which scores 0 and is never filtered.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

logger = logging.getLogger("energaizer_operator.extender")

WATCH_TIMEOUT_SECONDS = 300
LIST_PAGE_SIZE = 500
MIN_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


class NodeAPI(Protocol):
    """What the cache asks of the API server (plain JSON)."""

    def list_page(self, token: str | None) -> dict[str, Any]:
        """One page of the NodeList (at most :data:`LIST_PAGE_SIZE` items), from ``token`` (None: the first)."""
        ...

    def watch(self, version: str) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) after ``version``, until the server ends the watch."""
        ...


class KubeNodeAPI:
    """:class:`NodeAPI` through the official client (in-cluster service account, else the kubeconfig)."""

    def __init__(self) -> None:
        import kubernetes

        from energaizer_operator.kube import api_client, request_timeout

        self._kubernetes = kubernetes
        self._core = kubernetes.client.CoreV1Api(api_client())
        self._timeout = request_timeout()

    def list_page(self, token: str | None) -> dict[str, Any]:
        """Plain JSON throughout (no typed models: faster, and tolerant of fields the client lacks). Within
        the API timeout (``kube.request_timeout()``): a list sent to an API server that died without
        resetting the connection would otherwise wait for ever, and the cache with it."""
        response = self._core.list_node(
            limit=LIST_PAGE_SIZE, _continue=token, _preload_content=False, _request_timeout=self._timeout
        )
        return json.loads(response.data)

    def watch(self, version: str) -> Iterator[dict[str, Any]]:
        """The events as the API server sends them (plain JSON, ``ERROR`` events included: the client's
        ``Watch().stream(deserialize=False)`` raised ``KeyError('raw_object')`` at one), with bookmarks (a
        quiet cluster's watch resumes from a current resourceVersion, not one compacted away meanwhile: a
        410 Gone and a relist at each expiry). The server ends the watch after :data:`WATCH_TIMEOUT_SECONDS`:
        a stream silent for that long and the API timeout more is a dead connection, given up (a timeout,
        then a relist), not waited on for ever with the cache frozen at its last state."""
        response = self._core.list_node(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=version,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            _preload_content=False,
            _request_timeout=(self._timeout, WATCH_TIMEOUT_SECONDS + self._timeout),  # (connect, each read)
        )
        try:
            for line in self._kubernetes.watch.watch.iter_resp_lines(response):
                if line.strip():
                    yield json.loads(line)
        finally:
            response.close()
            response.release_conn()


class NodeCache:
    def __init__(
        self,
        product_label: str,
        *,
        api: Callable[[], NodeAPI] = KubeNodeAPI,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        """``api`` makes the API client (in the cache's thread, at each relist); ``sleep`` waits out a
        back-off (default: until :meth:`stop`, at most that many seconds)."""
        self.product_label = product_label
        self.products: dict[str, str | None] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._api = api
        self._sleep = sleep or self._stop.wait
        self._watch_worked = False

    def product(self, name: str) -> str | None:
        return self.products.get(name)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="energaizer-node-cache", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _product_of(self, node: Mapping[str, Any]) -> str | None:
        return ((node.get("metadata") or {}).get("labels") or {}).get(self.product_label)

    def run(self) -> None:
        """List and watch until :meth:`stop` (what :meth:`start`'s thread runs)."""
        backoff = MIN_BACKOFF_SECONDS
        while not self._stop.is_set():
            self._watch_worked = False
            try:
                self._list_and_watch()
            except Exception as exc:
                if self._watch_worked:  # a routine end (410 Gone after a healthy watch), not a failing API
                    backoff = MIN_BACKOFF_SECONDS
                text = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                logger.warning("node cache: %s; relisting in %.0f s", text, backoff)
                self._sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _list_and_watch(self) -> None:
        api = self._api()
        products: dict[str, str | None] = {}
        token: str | None = None
        while True:
            page = api.list_page(token)
            for n in page.get("items") or []:
                products[n["metadata"]["name"]] = self._product_of(n)
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion")  # every page of one list is the same snapshot
            token = meta.get("continue")
            if not token:
                break
        self.products = products  # whole: a relist that fails half-way keeps the previous map
        if not self.synced.is_set():
            logger.info("node cache synced: %d nodes", len(self.products))
        self.synced.set()
        while not self._stop.is_set():
            events = api.watch(version)
            for event in events:
                node = event.get("object") or {}
                if event.get("type") not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                    raise RuntimeError(f"watch: {event.get('type')}: {node.get('message', '')}")
                self._watch_worked = True
                meta = node.get("metadata") or {}
                version = meta.get("resourceVersion") or version
                if event["type"] == "DELETED":
                    self.products.pop(meta.get("name", ""), None)
                elif event["type"] != "BOOKMARK":
                    self.products[meta.get("name", "")] = self._product_of(node)
                if self._stop.is_set():
                    getattr(events, "close", lambda: None)()  # ends the HTTP stream
                    return
            self._watch_worked = True  # ran to its timeout: resumed from the last resourceVersion
