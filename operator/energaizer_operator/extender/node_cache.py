"""Node name -> GPU product label, kept current by a list + watch of the API's Nodes.

kube-scheduler sends only node names when the extender is configured ``nodeCacheCapable: true``;
this cache answers which GPU product each one carries. It runs in one background thread with the
official client (in-cluster service account, else the current kubeconfig). The list is read in pages
of :data:`LIST_PAGE_SIZE` Nodes, so that memory and the time the JSON decoding holds the GIL (stalling
requests) stay bounded by a page however large the cluster: a whole 5,000-node list at once peaks at
several hundred MB, past the chart's memory limit. A lost watch resumes from the last resourceVersion; a
410 Gone or any other error relists after a back-off. Until the first list has arrived every node is
unknown, which scores 0 and is never filtered.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("energaizer_operator.extender")

WATCH_TIMEOUT_SECONDS = 300
LIST_PAGE_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0


class NodeCache:
    def __init__(self, product_label: str) -> None:
        self.product_label = product_label
        self.products: dict[str, str | None] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def product(self, name: str) -> str | None:
        return self.products.get(name)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="energaizer-node-cache", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _product_of(self, node: Mapping[str, Any]) -> str | None:
        return ((node.get("metadata") or {}).get("labels") or {}).get(self.product_label)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._list_and_watch()
                backoff = 1.0
            except Exception as exc:
                text = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                logger.warning("node cache: %s; relisting in %.0f s", text, backoff)
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _list_and_watch(self) -> None:
        """Plain JSON throughout (no typed models: faster, and tolerant of fields the client lacks)."""
        import kubernetes

        from energaizer_operator.kube import api_client

        core = kubernetes.client.CoreV1Api(api_client())
        products: dict[str, str | None] = {}
        token: str | None = None
        while True:
            page = json.loads(
                core.list_node(limit=LIST_PAGE_SIZE, _continue=token, _preload_content=False).data
            )
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
            watch = kubernetes.watch.Watch()
            for event in watch.stream(
                core.list_node,
                resource_version=version,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
                deserialize=False,
            ):
                node = event.get("object") or {}
                if event.get("type") not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                    raise RuntimeError(f"watch: {event.get('type')}: {node.get('message', '')}")
                meta = node.get("metadata") or {}
                version = meta.get("resourceVersion") or version
                if event["type"] == "DELETED":
                    self.products.pop(meta.get("name", ""), None)
                elif event["type"] != "BOOKMARK":
                    self.products[meta.get("name", "")] = self._product_of(node)
                if self._stop.is_set():
                    watch.stop()
                    return
