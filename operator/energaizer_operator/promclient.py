"""A small async client of the Prometheus HTTP API (``/api/v1/query``), on aiohttp (kopf's own HTTP stack).

Every failure (connection refused, timeout, a 5xx, an ``error`` status, a body that is not the API's
JSON) raises :class:`PrometheusUnavailable`, which the caller treats as retryable.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class PrometheusUnavailable(Exception):
    """Prometheus did not answer a query usefully; retry later."""


class PrometheusClient:
    def __init__(self, base_url: str, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def query(self, expr: str, at: float | None = None) -> tuple[str, list[dict[str, Any]]]:
        """An instant query -> (resultType, result)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.base_url}/api/v1/query"
        try:
            async with self._client().post(url, data=params) as resp:
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
