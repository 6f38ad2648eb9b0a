"""Where ``/healthz`` and ``/metrics`` listen: every IPv6 and IPv4 address by default.

In an IPv6-only cluster the pod's IP is IPv6, and the servers once listened on ``0.0.0.0`` only: the
kubelet's probes and Prometheus could not reach them. Where the host has no IPv6 they fall back to
``0.0.0.0``; these tests make that happen the way such a kernel does (creating an IPv6 socket fails;
or binding it) and check the servers still answer on IPv4.
"""

from __future__ import annotations

import errno
import socket
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from energaizer_operator import listen
from energaizer_operator.health import HealthServer
from energaizer_operator.metrics import Metrics
from operator_testkit import connection_refused, needs_ipv6


class _NoIPv6Kernel(socket.socket):
    """``socket.socket`` on a kernel built without IPv6: an AF_INET6 socket cannot be made."""

    def __init__(self, family: int = -1, *args: object, **kwargs: object) -> None:
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        super().__init__(family, *args, **kwargs)


class _IPv6Unbindable(socket.socket):
    """``socket.socket`` where an IPv6 socket is made but cannot be bound (EADDRNOTAVAIL, as ``::1`` is
    with net.ipv6.conf.all.disable_ipv6=1)."""

    def bind(self, address: object) -> None:
        if self.family == socket.AF_INET6:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        super().bind(address)


def _url(host: str, port: int, path: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def _get(host: str, port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(_url(host, port, path), timeout=30) as r:
        return r.status, r.read().decode()


# --- the two servers, each started the way the operator starts it (port 0: any free one) ----------------


def _health(host: str | None = None) -> tuple[int, Callable[[], None]]:
    server = HealthServer(0, lambda: False, host=host).start()
    return server.server.server_address[1], server.shutdown


def _metrics(host: str | None = None) -> tuple[int, Callable[[], None]]:
    server = Metrics().serve(0, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server.server_address[1], stop


SERVERS = {"healthz": (_health, "/healthz", "ok"), "metrics": (_metrics, "/metrics", "energaizer_aijobs")}


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Callable, str, str]]:
    yield SERVERS[request.param]


@needs_ipv6
def test_the_default_answers_on_ipv4_and_ipv6(server) -> None:
    start, path, text = server
    port, stop = start()
    try:
        for host in ("127.0.0.1", "::1"):
            status, body = _get(host, port, path)
            assert status == 200 and text in body, host
    finally:
        stop()


@needs_ipv6
@pytest.mark.parametrize(("host", "other"), [("127.0.0.1", "::1"), ("::1", "127.0.0.1")])
def test_an_explicit_address_is_bound_exactly(server, host: str, other: str) -> None:
    start, path, text = server
    port, stop = start(host)
    try:
        status, body = _get(host, port, path)
        assert status == 200 and text in body
        assert connection_refused(other, port)
    finally:
        stop()


@pytest.mark.parametrize("kernel", [_NoIPv6Kernel, _IPv6Unbindable])
def test_without_ipv6_the_default_falls_back_to_ipv4(server, monkeypatch, kernel) -> None:
    start, path, text = server
    monkeypatch.setattr(socket, "socket", kernel)
    port, stop = start()
    try:
        status, body = _get("127.0.0.1", port, path)
        assert status == 200 and text in body
    finally:
        stop()


# --- the helper itself ----------------------------------------------------------------------------------


@needs_ipv6
def test_the_default_is_one_dual_stack_socket() -> None:
    with listen.listen_socket(None, 0) as sock:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::"
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        assert listen.where(sock).endswith("(IPv6 and IPv4)")


@pytest.mark.parametrize("kernel", [_NoIPv6Kernel, _IPv6Unbindable])
def test_the_fallback_is_every_ipv4_address(monkeypatch, kernel) -> None:
    monkeypatch.setattr(socket, "socket", kernel)
    with listen.listen_socket(None, 0) as sock:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "0.0.0.0"
        assert listen.where(sock) == f"0.0.0.0:{sock.getsockname()[1]}"


@needs_ipv6
def test_an_explicit_ipv6_any_is_ipv6_only() -> None:
    """``::`` given is every IPv6 address and no IPv4 one, whatever net.ipv6.bindv6only says."""
    with listen.listen_socket("::", 0) as sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert listen.where(sock) == f"[::]:{sock.getsockname()[1]}"


@needs_ipv6
def test_a_port_taken_on_ipv6_is_an_error_not_an_ipv4_only_server() -> None:
    """Falling back to 0.0.0.0 there would serve IPv4 clients and leave IPv6 ones to the other process."""
    with listen.listen_socket("::", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as exc:
            listen.listen_socket(None, port)
        assert exc.value.errno == errno.EADDRINUSE


def test_a_port_taken_on_ipv4_is_an_error() -> None:
    with listen.listen_socket("0.0.0.0", 0) as taken:
        with pytest.raises(OSError) as exc:
            listen.listen_socket(None, taken.getsockname()[1])
        assert exc.value.errno == errno.EADDRINUSE
