"""The operator's own API calls (kube.py) against a server that accepts requests and never answers (an
API server that died without resetting its connections): a call gives up after its timeout, having sent
its request once. urllib3's default retries sent a GET again after each timeout, so an unanswered read
took 4 timeouts (a Lease renewal, 2 s per call on a 6 s Lease, took 8 s)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from energaizer_operator import kube
from operator_testkit import SocketServer, use_kube_api


class Unanswering(SocketServer):
    """Accepts connections and reads requests on 127.0.0.1, never answers; counts the requests."""

    def __init__(self) -> None:
        self.requests = 0
        super().__init__()

    def serve(self, conn: socket.socket, number: int) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.requests += data.count(b" HTTP/1.1\r\n")


@pytest.fixture
def unanswering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Unanswering]:
    server = Unanswering()
    use_kube_api(f"http://127.0.0.1:{server.port}", tmp_path, monkeypatch)
    yield server
    server.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda: kube.read_lease("default", "energaizer-operator", timeout=1),
        lambda: kube.patch_lease("default", "energaizer-operator", {"spec": {}}, timeout=1),
        lambda: kube.list_uids("/api/v1/pods", timeout=1),
    ],
    ids=["read", "patch", "list"],
)
def test_an_unanswered_call_is_sent_once(unanswering: Unanswering, call) -> None:
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        call()
    assert unanswering.requests == 1
