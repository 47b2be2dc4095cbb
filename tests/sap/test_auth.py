"""The OAuth token cache, against respx: one fetch for many callers, expiry, 401 once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from app.sap.auth import OAuthClientCredentials
from app.sap.errors import SapConfigurationError, SapRetryableError

TOKEN_URL = "https://sap.example/sap/bc/sec/oauth2/token"
API_URL = "https://sap.example/api"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_route(router: respx.Router, lifetime: int | str = 3600) -> respx.Route:
    counter = iter(range(1, 1000))
    return router.post(TOKEN_URL).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "access_token": f"tok-{next(counter)}",
                "token_type": "Bearer",
                "expires_in": lifetime,
            },
        )
    )


@pytest.fixture
def router() -> respx.Router:
    with respx.mock(assert_all_called=False) as mocked:
        yield mocked


async def test_fifty_concurrent_calls_fetch_one_token(router: respx.Router) -> None:
    tokens = token_route(router)
    api = router.get(API_URL).mock(return_value=httpx.Response(200))
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "secret")
        responses = await asyncio.gather(*(http.get(API_URL, auth=auth) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert tokens.call_count == 1
    assert api.call_count == 50
    assert api.calls.last.request.headers["Authorization"] == "Bearer tok-1"
    sent = tokens.calls.last.request
    assert sent.content == b"grant_type=client_credentials"
    assert sent.headers["Authorization"].startswith("Basic ")


async def test_token_refreshed_shortly_before_expiry(router: respx.Router) -> None:
    tokens = token_route(router, lifetime="3600")  # ABAP may send a string
    router.get(API_URL).mock(return_value=httpx.Response(200))
    clock = Clock()
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "secret", clock=clock)
        await http.get(API_URL, auth=auth)
        clock.now += 3500
        await http.get(API_URL, auth=auth)
        assert tokens.call_count == 1
        clock.now += 100  # inside the last minute: refresh
        await http.get(API_URL, auth=auth)
    assert tokens.call_count == 2


async def test_401_drops_token_and_retries_once(router: respx.Router) -> None:
    tokens = token_route(router)
    api = router.get(API_URL).mock(side_effect=[httpx.Response(401), httpx.Response(200)])
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "secret")
        response = await http.get(API_URL, auth=auth)
    assert response.status_code == 200
    assert tokens.call_count == 2
    assert [c.request.headers["Authorization"] for c in api.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_second_401_is_returned_not_looped(router: respx.Router) -> None:
    tokens = token_route(router)
    api = router.get(API_URL).mock(return_value=httpx.Response(401))
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "secret")
        response = await http.get(API_URL, auth=auth)
    assert response.status_code == 401
    assert tokens.call_count == 2 and api.call_count == 2


async def test_refused_client_is_a_configuration_error(router: respx.Router) -> None:
    router.post(TOKEN_URL).mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "wrong-secret")
        with pytest.raises(SapConfigurationError) as error:
            await http.get(API_URL, auth=auth)
    assert "wrong-secret" not in str(error.value)


async def test_callers_waiting_for_one_fetch_share_its_failure(router: respx.Router) -> None:
    tokens = router.post(TOKEN_URL).mock(return_value=httpx.Response(503))
    api = router.get(API_URL).mock(return_value=httpx.Response(200))
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "secret")
        results = await asyncio.gather(
            *(http.get(API_URL, auth=auth) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, SapRetryableError) for r in results)
        assert tokens.call_count == 1  # not one fetch per caller, in turn
        assert api.call_count == 0
        token_route(router)
        assert (await http.get(API_URL, auth=auth)).status_code == 200  # the next call fetches
    assert api.call_count == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(router: respx.Router) -> None:
    release = asyncio.Event()

    async def slow_token(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})

    tokens = router.post(TOKEN_URL).mock(side_effect=slow_token)
    router.get(API_URL).mock(return_value=httpx.Response(200))
    async with httpx.AsyncClient() as http:
        auth = OAuthClientCredentials(http, TOKEN_URL, "id", "secret")
        first = asyncio.create_task(http.get(API_URL, auth=auth))
        second = asyncio.create_task(http.get(API_URL, auth=auth))
        await asyncio.sleep(0.05)
        first.cancel()
        release.set()
        assert (await second).status_code == 200
        assert first.cancelled()
    assert tokens.call_count == 1
