"""OAuth 2.0 client-credentials for SAP, as an `httpx.Auth`: cached, shared, retried once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from app.sap import metrics
from app.sap.errors import SapConfigurationError, SapRetryableError

REFRESH_EARLY_SECONDS = 60.0


class OAuthClientCredentials(httpx.Auth):
    """Bearer token from `token_url`, refreshed shortly before `expires_in` runs out.

    Concurrent callers share one refresh, and its failure: while the token endpoint is down,
    callers that wait for the same fetch all fail with it instead of each fetching in turn.
    The fetch runs as its own task, so a cancelled caller cannot cancel it for the others. A
    401 drops the token and the request is sent once more with a fresh one.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        on_fetch: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._credentials = httpx.BasicAuth(client_id, client_secret)
        self._on_fetch = on_fetch
        #: how the last fetch ended and when (`/health/ready` shows it without calling SAP)
        self.last_fetch: str | None = None
        self._clock = clock
        self._refresh: asyncio.Task[str] | None = None
        self._token: str | None = None
        self._expires_at = 0.0

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._valid_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            await self._invalidate(token)
            token = await self._valid_token()
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def token(self) -> str:
        """A valid token, fetched if needed (the preflight asks for one without a call)."""
        return await self._valid_token()

    async def _valid_token(self) -> str:
        if self._token and self._clock() < self._expires_at:
            return self._token
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._renew())
            self._refresh.add_done_callback(self._refreshed)
        return await asyncio.shield(self._refresh)

    async def _renew(self) -> str:
        token, lifetime = await self._fetch()
        self._token = token
        self._expires_at = self._clock() + max(lifetime - REFRESH_EARLY_SECONDS, lifetime / 2)
        return token

    def _refreshed(self, task: asyncio.Task[str]) -> None:
        self._refresh = None
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have been cancelled

    async def _invalidate(self, used: str) -> None:
        if self._token == used:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        if self._on_fetch:
            self._on_fetch()
        result, status, started = "error", "unreachable", time.perf_counter()
        try:
            try:
                response = await self._http.post(
                    self._token_url,
                    data={"grant_type": "client_credentials"},
                    auth=self._credentials,
                    headers={"Accept": "application/json"},
                )
            except httpx.TransportError as exc:
                raise SapRetryableError(
                    f"SAP token endpoint unreachable ({type(exc).__name__})"
                ) from None
            status = str(response.status_code)
            if response.status_code in (400, 401, 403):
                result = "refused"
                raise SapConfigurationError(
                    "SAP token endpoint refused the client credentials "
                    f"(HTTP {response.status_code}); check Client ID, Client Secret and Token URL"
                )
            if response.status_code != 200:
                raise SapRetryableError(f"SAP token endpoint answered HTTP {response.status_code}")
            token = _parse_token(response)
            result = "ok"
            return token
        finally:
            when = datetime.now(UTC).isoformat(timespec="seconds")
            self.last_fetch = f"{result} (HTTP {status}) at {when}"
            metrics.SAP_TOKEN_FETCHES.labels(result=result).inc()
            metrics.SAP_REQUEST_DURATION.labels("token", status).observe(
                time.perf_counter() - started
            )


def _parse_token(response: httpx.Response) -> tuple[str, float]:
    try:
        body: Any = response.json()
        token = str(body["access_token"])
        lifetime = float(body.get("expires_in") or 3600)  # ABAP may send it as a string
    except (ValueError, KeyError, TypeError):
        raise SapRetryableError("SAP token endpoint sent an unreadable answer") from None
    return token, lifetime
