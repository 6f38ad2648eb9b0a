"""The Prometheus client (promclient.py) on pooled keep-alive connections that the server closes: a query
whose connection is closed or reset before any answer (Prometheus or a proxy closing an idle connection as
the query arrives) is sent once more at once, on a new connection; before, the measurement was reported
``PrometheusUnavailable`` and waited a whole measure interval (aiohttp sends again on its own only
idempotent methods, and a query is a POST). A query that timed out, or whose answer broke off, is not sent
again. The server is operator_testkit's ClosingServer (as for the API client: test_kube_connections.py)."""

from __future__ import annotations

import errno
import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from energaizer_operator.promclient import PrometheusClient, PrometheusUnavailable, connection_lost
from operator_testkit import ClosingServer, wait_for

ANSWER = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()


@pytest.fixture
async def closing() -> AsyncIterator[Callable[..., tuple[ClosingServer, PrometheusClient]]]:
    started: list[tuple[ClosingServer, PrometheusClient]] = []

    def start(
        answered: int, how: str, timeout_seconds: float = 30.0
    ) -> tuple[ClosingServer, PrometheusClient]:
        server = ClosingServer(answered, how, ANSWER)
        client = PrometheusClient(f"http://127.0.0.1:{server.port}", timeout_seconds=timeout_seconds)
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        await client.close()
        server.close()


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_query_on_a_connection_closed_unanswered_is_sent_again_on_a_new_one(closing, how) -> None:
    """The second query goes out on the first one's pooled connection, which the server then closes (or
    resets) unanswered: the query is answered, sent once more on a new connection."""
    server, client = closing(1, how)
    assert await client.query("up", 12.5) == ("vector", [])
    assert await client.query("up", 13.5) == ("vector", [])
    assert server.requests == [(1, "POST"), (1, "POST"), (2, "POST")]


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_it_is_sent_again_once(closing, how) -> None:
    """A server that closes every connection unanswered: the query fails (retryable) after it went out
    twice, on two connections."""
    server, client = closing(0, how)
    with pytest.raises(PrometheusUnavailable):
        await client.query("up")
    assert server.requests == [(1, "POST"), (2, "POST")]


async def test_a_query_whose_answer_broke_off_is_not_sent_again(closing) -> None:
    server, client = closing(0, "midbody")
    with pytest.raises(PrometheusUnavailable):
        await client.query("up")
    assert server.requests == [(1, "POST")]


async def test_a_query_that_timed_out_is_not_sent_again(closing) -> None:
    """No answer within the client's timeout: the query may be in progress; not sent again."""
    server, client = closing(0, "hang", timeout_seconds=1.0)
    with pytest.raises(PrometheusUnavailable):
        await client.query("up")
    await wait_for(lambda: server.requests, timeout=60)
    assert server.requests == [(1, "POST")]


def test_connection_lost_is_no_timeout_and_no_refused_connect() -> None:
    """What is sent again (the connection closed or reset before any answer), and what is not (the query
    may be in progress, was never sent, or was answered in part)."""
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    assert connection_lost(aiohttp.ServerDisconnectedError())
    assert connection_lost(aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"))
    assert connection_lost(aiohttp.ClientOSError(errno.EPIPE, "Can not write request body"))
    assert not connection_lost(
        aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, ""))
    )
    assert not connection_lost(aiohttp.ServerTimeoutError("Timeout on reading data from socket"))
    assert not connection_lost(aiohttp.ClientPayloadError("Response payload is not completed"))
    assert not connection_lost(TimeoutError())
