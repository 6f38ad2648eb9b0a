"""Where ``energaizer extender`` listens: every IPv6 and IPv4 address by default, exactly ``--host`` when
given. In an IPv6-only cluster kube-scheduler calls the extender's Service on an IPv6 address; the
extender once listened on ``0.0.0.0`` only, every call failed, and the chart's ``ignorable: true`` hid it
(pods scheduled without the energy scores)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from extender_support import (
    PRODUCTS,
    ExtenderProcess,
    args_with_nodes,
    free_port,
    node,
    pod,
    request,
    workload,
)
from operator_testkit import connection_refused, has_ipv6_loopback, needs_ipv6

# test setup: the process's socket module as on a kernel without IPv6 (an AF_INET6 socket cannot be made)
NO_IPV6_KERNEL = """
import errno, socket
class NoIPv6(socket.socket):
    def __init__(self, family=-1, *args, **kwargs):
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        super().__init__(family, *args, **kwargs)
socket.socket = NoIPv6
"""


@needs_ipv6
def test_the_default_answers_on_ipv4_and_ipv6(extender) -> None:
    """The module's extender runs with the default address (no ``--host``)."""
    for host in ("127.0.0.1", "::1"):
        assert request(extender.port, "/healthz", host=host) == (200, "ok"), host
        body = args_with_nodes(pod("p", workload()), [node("n1", PRODUCTS["l4"])])
        status, answer = request(extender.port, "/scheduler/prioritize", body, host=host)
        assert status == 200 and answer == [{"Host": "n1", "Score": 10}], host
    assert f"energaizer extender on [::]:{extender.port} (IPv6 and IPv4)" in extender.log()


@needs_ipv6
@pytest.mark.parametrize(("host", "other"), [("::1", "127.0.0.1"), ("127.0.0.1", "::1")])
def test_an_explicit_host_is_bound_exactly(tmp_path, host: str, other: str) -> None:
    proc = ExtenderProcess(tmp_path, "--no-node-cache", "--host", host, probe_host=host)
    try:
        assert request(proc.port, "/readyz", host=host) == (200, "ok")
        assert connection_refused(other, proc.port)
    finally:
        assert proc.stop() == 0


def test_without_ipv6_the_default_falls_back_to_ipv4(tmp_path) -> None:
    proc = ExtenderProcess(tmp_path, "--no-node-cache", prelude=NO_IPV6_KERNEL)
    try:
        assert request(proc.port, "/readyz") == (200, "ok")
        if has_ipv6_loopback():  # this machine has IPv6; the process believes it has none
            assert connection_refused("::1", proc.port)
        assert f"energaizer extender on 0.0.0.0:{proc.port} (node cache off)" in proc.log()
    finally:
        assert proc.stop() == 0


def test_a_host_not_of_this_machine_is_a_one_line_host_error() -> None:
    command = ["extender", "--no-node-cache", "--host", "192.0.2.1", "--port", str(free_port())]
    r = subprocess.run(
        [sys.executable, "-m", "energaizer", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("error: --host: cannot listen on 192.0.2.1 port ")
