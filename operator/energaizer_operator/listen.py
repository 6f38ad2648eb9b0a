"""The listening socket of every server here (``/healthz``, ``/metrics``, the scheduler extender).

By default (``host`` None) a server listens on every address of both families: one IPv6 socket on
``::`` with ``IPV6_V6ONLY`` off, so IPv4 clients arrive on it as ``::ffff:a.b.c.d``. An IPv6-only
cluster gives pods IPv6 addresses only, and an IPv4 listener (``0.0.0.0``) was unreachable there for
the kubelet's probes, Prometheus and kube-scheduler. Where the host has no IPv6 (a kernel built or
booted without it, ``ipv6.disable=1``: the socket cannot be made) or ``::`` cannot be bound, the server
listens on ``0.0.0.0``. (``net.ipv6.conf.all.disable_ipv6=1`` still lets ``::`` be bound, and the
socket then serves IPv4 clients.) A port already taken, or one the process may not bind, is an error in
either family and is raised, not retried on IPv4 alone.

An explicit ``host`` (a name or an IPv4/IPv6 literal) is bound exactly: the first address
``getaddrinfo`` gives for it, an IPv6 one with ``IPV6_V6ONLY`` on (``"::"`` is every IPv6 address and
no IPv4 one, whatever ``net.ipv6.bindv6only`` says).

asyncio's ``create_server`` turns ``IPV6_V6ONLY`` on for every IPv6 socket it binds, so the aiohttp
server is given this socket (``web.run_app(sock=...)``) instead of a host; the ``socketserver`` servers
take it through :class:`ServeOn`.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

BACKLOG = 128
# bind errors about the port, not the family: IPv4 would fail the same way or hide the conflict
_PORT_ERRORS = (errno.EADDRINUSE, errno.EACCES)


def listen_socket(host: str | None, port: int) -> socket.socket:
    """A TCP socket bound to ``port`` on ``host`` (None: every address, see the module) and listening."""
    if host is None:
        try:
            return _listen(socket.AF_INET6, ("::", port), v6only=False)
        except OSError as exc:
            if exc.errno in _PORT_ERRORS:
                raise
        return _listen(socket.AF_INET, ("0.0.0.0", port))
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return _listen(family, address, v6only=True)


def _listen(family: socket.AddressFamily, address: tuple[Any, ...], *, v6only: bool = True) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def where(sock: socket.socket) -> str:
    """``[::]:8888 (IPv6 and IPv4)``, ``0.0.0.0:8888``, ``[::1]:8888``: for the log."""
    host, port = sock.getsockname()[:2]
    if sock.family != socket.AF_INET6:
        return f"{host}:{port}"
    dual = not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    return f"[{host}]:{port}" + (" (IPv6 and IPv4)" if dual else "")


class ServeOn:
    """Mixin for a ``socketserver.TCPServer`` class: serve on a socket from :func:`listen_socket`
    (``class Server(ServeOn, ThreadingHTTPServer)``; ``Server(sock, Handler)``) instead of binding one.

    It records what ``HTTPServer.server_bind`` would have (``server_name``, ``server_port``), which
    ``wsgiref``'s server reads."""

    def __init__(self, sock: socket.socket, handler: Any) -> None:
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()  # the unbound socket TCPServer made
        self.socket, self.address_family = sock, sock.family
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = socket.getfqdn(self.server_address[0]), self.server_address[1]
        setup_environ = getattr(self, "setup_environ", None)  # wsgiref.simple_server.WSGIServer
        if setup_environ is not None:
            setup_environ()
