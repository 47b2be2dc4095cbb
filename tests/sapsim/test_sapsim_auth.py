from datetime import timedelta

import httpx

from sapsim import SimState


async def test_token_flow_issues_a_bearer_token_that_opens_the_apis(sap, client, state):
    response = await client.post(
        sap.TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=sap.AUTH
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] == 3600
    assert body["access_token"] and "scope" in body
    read = await sap.cube(auth=None, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200
    assert state.stats.token_requests == 1


async def test_token_request_with_a_wrong_client_is_invalid_client(sap, client, state):
    response = await client.post(
        sap.TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=("sim-client", "nope")
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers
    assert state.stats.token_requests == 1
    assert state.stats.tokens_issued == 0


async def test_token_request_needs_client_credentials_grant(sap, client):
    response = await client.post(sap.TOKEN_PATH, data={"grant_type": "password"}, auth=sap.AUTH)

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_sap_routes_refuse_missing_or_wrong_credentials(sap):
    no_auth = await sap.cube(auth=None)
    wrong_basic = await sap.cube(auth=("sim-client", "wrong"))
    bad_bearer = await sap.cube(auth=None, headers={"Authorization": "Bearer not-a-token"})
    soap = await sap.post_xml(sap.request_xml(), auth=None)

    for response in (no_auth, wrong_basic, bad_bearer, soap):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    assert (await sap.cube()).status_code == 200  # communication user (Basic) works


async def test_expired_token_is_refused(sap, state: SimState):
    token = await sap.token()
    real_now = state.now
    state.now = lambda: real_now() + timedelta(seconds=3601)

    response = await sap.cube(auth=None, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


async def test_revoke_tokens_invalidates_every_issued_token(sap, client):
    first, second = await sap.token(), await sap.token()

    put = await client.put("/sim/faults", json={"revoke_tokens": True})

    assert put.status_code == 200
    for token in (first, second):
        refused = await sap.cube(auth=None, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
    fresh = await sap.token()
    accepted = await sap.cube(auth=None, headers={"Authorization": f"Bearer {fresh}"})
    assert accepted.status_code == 200


async def test_control_routes_need_no_auth(client: httpx.AsyncClient):
    assert (await client.get("/sim/stats")).status_code == 200
