"""A small async client of the Prometheus HTTP API (``/api/v1/query``), on aiohttp (kopf's own HTTP stack).

Every failure (connection refused, timeout, a 5xx, an ``error`` status, a body that is not the API's
JSON) raises :class:`PrometheusUnavailable`, which the caller treats as retryable. One exception: a query
whose connection the server closed or reset before any answer (a pooled keep-alive connection that
Prometheus or a proxy closed as the query arrived) is sent once more at once, within the same timeout
(:func:`connection_lost`): a query is idempotent, and a server closing an idle connection has not handled
it. aiohttp sends again only idempotent methods on its own, and a query is a POST (a long expression does
not fit in a URL). A timeout, an HTTP error or a connection lost in the middle of an answer is not sent
again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

# what a connection reset or broken under a request raises (aiohttp.ClientOSError carries the errno)
_LOST_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})


class PrometheusUnavailable(Exception):
    """Prometheus did not answer a query usefully; retry later."""


def connection_lost(exc: BaseException) -> bool:
    """Whether a query failed because its connection was closed (``ServerDisconnectedError``: no status line
    came) or reset (``ClientOSError`` ECONNRESET, EPIPE, ECONNABORTED) before any answer. Not a failed
    connect (``ClientConnectorError``: nothing was sent), a timeout (the query may be in progress) nor an
    answer that broke off (``ClientPayloadError``)."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    return (
        isinstance(exc, aiohttp.ClientOSError)
        and not isinstance(exc, aiohttp.ClientConnectorError)
        and exc.errno in _LOST_ERRNOS
    )


class PrometheusClient:
    def __init__(self, base_url: str, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _post(self, url: str, params: dict[str, str]) -> aiohttp.ClientResponse:
        """The query's response (its status and headers read), sent once more when its connection was lost
        before any answer (:func:`connection_lost`); both tries within ``timeout_seconds``, which also bounds
        reading the body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_seconds
        resent = False
        while True:
            timeout = aiohttp.ClientTimeout(total=deadline - loop.time())
            try:
                return await self._client().post(url, data=params, timeout=timeout)
            except aiohttp.ClientError as exc:
                if resent or not connection_lost(exc) or deadline - loop.time() <= 0:
                    raise
                resent = True
                logger.info("%s: connection closed before an answer (%r); sending the query again", url, exc)

    async def query(self, expr: str, at: float | None = None) -> tuple[str, list[dict[str, Any]]]:
        """An instant query -> (resultType, result)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.base_url}/api/v1/query"
        try:
            async with await self._post(url, params) as resp:
                text = await resp.text()
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PrometheusUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else text[:200]
            raise PrometheusUnavailable(f"{url}: HTTP {resp.status}: {detail}")
        data = body.get("data") or {}
        return str(data.get("resultType", "")), list(data.get("result") or [])
