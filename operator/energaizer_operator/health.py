"""``/healthz`` served from its own thread, off the event loop: a busy operator still answers at once.

It fails (HTTP 500) only when a loop of the operator has died or the event loop has not run for
``stall_seconds`` (a hung process), never because the operator is busy with a burst. It listens on every
IPv6 and IPv4 address (:mod:`energaizer_operator.listen`), so the kubelet's probes reach it on a pod IP of
either family.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from energaizer_operator.listen import ServeOn, listen_socket


class _Server(ServeOn, ThreadingHTTPServer):
    daemon_threads = True


class HealthServer:
    def __init__(
        self,
        port: int,
        failed: Callable[[], bool],
        *,
        stall_seconds: float = 300.0,
        host: str | None = None,
    ) -> None:
        """``host`` None: every address (:func:`energaizer_operator.listen.listen_socket`)."""
        self.failed, self.stall_seconds = failed, stall_seconds
        self.heartbeat = time.monotonic()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/healthz", "/livez", "/readyz"):
                    self.send_error(404)
                    return
                problem = owner.problem()
                body = (problem or "ok").encode()
                self.send_response(500 if problem else 200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(listen_socket(host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="healthz", daemon=True)

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def problem(self) -> str | None:
        if self.failed():
            return "a loop of the operator has stopped"
        stalled = time.monotonic() - self.heartbeat
        if stalled > self.stall_seconds:
            return f"the event loop has not run for {stalled:.0f} s"
        return None

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
