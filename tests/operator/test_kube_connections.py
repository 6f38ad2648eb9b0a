"""The operator's own API calls (kube.py) on pooled keep-alive connections that the server closes: a
request whose connection is closed or reset before any answer (the API server or a load balancer closing
an idle connection as the request arrives, or having dropped it) is sent once more, on a new connection;
a request that got no answer in time is not (test_kube_timeout). Before, the first such request failed the
call (urllib3 retries are off), and the loop that made it backed off.

The server here is a real HTTP/1.1 server on 127.0.0.1 that answers a set number of requests per connection
and then closes (FIN) or resets (RST) the connection when the next request on it arrives, unanswered: what
urllib3 cannot see coming. (A connection the server closed while idle, its FIN received before the next
request, urllib3 replaces before sending: is_connection_dropped.)"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from energaizer_operator import kube
from operator_testkit import ClosingServer, use_kube_api

LEASE = {
    "apiVersion": "coordination.k8s.io/v1",
    "kind": "Lease",
    "metadata": {"name": "energaizer-operator", "namespace": "default", "resourceVersion": "1"},
    "spec": {},
    "items": [],  # also an empty list page
}


CALLS: dict[str, tuple[str, Callable[[], Any]]] = {
    "read": ("GET", lambda: kube.read_lease("default", "energaizer-operator", timeout=30)),
    "patch": ("PATCH", lambda: kube.patch_lease("default", "energaizer-operator", {"spec": {}}, timeout=30)),
    "create": ("POST", lambda: kube.create_lease("default", {"metadata": {"name": "x"}}, timeout=30)),
    "list": ("GET", lambda: kube.list_uids("/api/v1/pods", timeout=30)),
}


@pytest.fixture
def closing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int, str], ClosingServer]]:
    servers: list[ClosingServer] = []

    def start(answered: int, how: str) -> ClosingServer:
        server = ClosingServer(answered, how, json.dumps(LEASE).encode())
        servers.append(server)
        use_kube_api(f"http://127.0.0.1:{server.port}", tmp_path, monkeypatch)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_request_on_a_connection_closed_unanswered_is_sent_again_on_a_new_one(closing, call, how) -> None:
    """The second call goes out on the first call's pooled connection, which the server then closes
    unanswered: the call succeeds, its request sent once more on a new connection."""
    method, send = CALLS[call]
    server = closing(1, how)
    send()
    send()
    assert server.requests == [(1, method), (1, method), (2, method)]


@pytest.mark.parametrize("how", ["close", "reset"])
def test_it_is_sent_again_once(closing, how) -> None:
    """A server that closes every connection unanswered: the call fails after its request went out twice,
    on two connections; a request's failure is urllib3's, as before."""
    server = closing(0, how)
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)) as failed:
        kube.patch_lease("default", "energaizer-operator", {"spec": {}}, timeout=30)
    assert kube.connection_lost(failed.value)
    assert server.requests == [(1, "PATCH"), (2, "PATCH")]


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_request_whose_answer_broke_off_is_not_sent_again(closing, call) -> None:
    """The connection reset in the middle of the answer's body: the server handled the request, which is
    not sent again (a write would be applied twice)."""
    method, send = CALLS[call]
    server = closing(0, "midbody")
    with pytest.raises(urllib3.exceptions.ProtocolError) as failed:
        send()
    assert not kube.connection_lost(failed.value)
    assert server.requests == [(1, method)]


def test_connection_lost_is_no_timeout() -> None:
    """What is sent again (the connection closed or reset before any answer), and what is not (the
    request may be in progress or was never sent)."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", 1)
    lost = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    timeout = urllib3.exceptions.ReadTimeoutError(pool, "/", "Read timed out.")
    refused = urllib3.exceptions.NewConnectionError(pool, "Connection refused")
    assert kube.connection_lost(lost)
    assert kube.connection_lost(urllib3.exceptions.MaxRetryError(pool, "/", lost))
    assert not kube.connection_lost(timeout)
    assert not kube.connection_lost(urllib3.exceptions.MaxRetryError(pool, "/", timeout))
    assert not kube.connection_lost(urllib3.exceptions.MaxRetryError(pool, "/", refused))
    broken = ConnectionResetError(104, "reset")
    assert not kube.connection_lost(
        urllib3.exceptions.ProtocolError(f"Connection broken: {broken!r}", broken)
    )


def test_pooled_connections_are_kept_alive_by_tcp_probes(closing) -> None:
    """TCP keepalive on the client's connections, probed after 30 s idle as client-go's are: a NAT or load
    balancer that drops idle connections silently (Azure's after 4 min, AWS NLB's after 350 s) keeps a probed
    one, and one that died is found out (reset) before the next request, which then opens a new one instead
    of waiting its timeout for an answer that cannot come."""
    server = closing(5, "close")
    CALLS["read"][1]()
    pool = kube.api_client().rest_client.pool_manager.connection_from_url(f"http://127.0.0.1:{server.port}")
    (conn,) = [c for c in pool.pool.queue if c is not None and c.sock is not None]
    assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) <= 60
