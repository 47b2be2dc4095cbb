"""OAuth 2.0 client credentials token endpoint and the credential checks of SAP routes.

Every SAP route accepts ``Authorization: Bearer <token from /sap/bc/sec/oauth2/token>`` (valid,
unexpired, not revoked) or HTTP Basic with the client id and secret (the communication user).
Served over TLS with ``--client-ca`` (`sapsim.tls`), the TLS layer has already required a client
certificate that CA issued, and a request without ``Authorization`` is that certificate's user,
as SAP maps a certificate to its communication user. ``soap_basic_only`` refuses bearer tokens
on the posting service, as its WSDL policy does.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from sapsim.state import SimState, StateDep

TOKEN_PATH = "/sap/bc/sec/oauth2/token"
REALM = 'Basic realm="SAP NetWeaver Application Server [SIM/100]"'

router = APIRouter(tags=["SAP: OAuth 2.0"])


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, or None."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def client_matches(state: SimState, credentials: tuple[str, str] | None) -> bool:
    if credentials is None:
        return False
    user, password = credentials
    config = state.config
    return secrets.compare_digest(user, config.client_id) and secrets.compare_digest(
        password, config.client_secret
    )


def is_authorized(
    state: SimState, authorization: str, *, soap: bool = False, tls_client: bool = False
) -> bool:
    """Whether an ``Authorization`` header (or, with none, a verified client certificate)
    opens the SAP APIs; ``soap``: the request is for the posting service."""
    if not authorization:
        return tls_client
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return not (soap and state.faults.soap_basic_only) and state.token_is_valid(value.strip())
    return client_matches(state, basic_credentials(authorization))


def unauthorized_response() -> Response:
    """What the ICF answers without valid credentials (an HTML logon error page)."""
    body = (
        "<html><head><title>Logon Error Message</title></head><body>"
        "<h1>Logon failed</h1><p>401 Unauthorized: no valid credentials were supplied.</p>"
        "</body></html>"
    )
    return Response(
        body, status_code=401, media_type="text/html", headers={"WWW-Authenticate": REALM}
    )


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = REALM
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


@router.post(TOKEN_PATH)
async def issue_token(request: Request, state: StateDep) -> Response:
    """Client credentials grant; the client authenticates with HTTP Basic."""
    if not client_matches(state, basic_credentials(request.headers.get("authorization", ""))):
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    grant_type = form.get("grant_type", [""])[0]
    if not grant_type:
        return _oauth_error(400, "invalid_request", "Parameter grant_type is missing")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", f"Grant type {grant_type} unsupported")
    token, lifetime = state.issue_token()
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": form.get("scope", [state.config.token_scope])[0],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
