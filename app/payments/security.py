"""Who may call the payment webhook: a Standard Webhooks signature or HTTP Basic credentials.

Both are checked against the raw body bytes before anything is parsed. The bridge's own API
keys are not accepted here: SAP and its middleware never hold them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request

from app.config.runtime import ConfigRuntime
from app.config.service import BridgeConfig
from app.platform.api_keys import AuthError

TOLERANCE_SECONDS = 300
WEBHOOK_BODY_LIMIT = 256 * 1024
MAX_WEBHOOK_ID = 255


class WebhookAuthError(AuthError):
    """The webhook request is not signed or authenticated as configured (401)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, status="unauthorized")


@dataclass(frozen=True)
class WebhookCaller:
    """An authenticated webhook request: how it proved itself and its raw body."""

    method: str  # "signature" or "basic"
    webhook_id: str | None
    body: bytes


@lru_cache(maxsize=8)
def _secret_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookAuthError("the configured Webhook Secret is not valid base64") from None
    if not key:
        raise WebhookAuthError("the configured Webhook Secret is empty")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` Standard Webhooks signature of `body` (used by the simulator too)."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    secret: str, headers: dict[str, str], body: bytes, now: float | None = None
) -> str:
    """Check `webhook-id`/`-timestamp`/`-signature`; returns the webhook id or raises 401."""
    webhook_id = _required(headers, "webhook-id")
    if len(webhook_id) > MAX_WEBHOOK_ID or not webhook_id.isprintable():
        raise WebhookAuthError(f"webhook-id must be at most {MAX_WEBHOOK_ID} printable characters")
    stamp = _required(headers, "webhook-timestamp")
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookAuthError("webhook-timestamp must be a Unix time in whole seconds")
    age = (time.time() if now is None else now) - int(stamp)
    if age > TOLERANCE_SECONDS:
        raise WebhookAuthError(
            f"webhook-timestamp is {int(age)} s old; at most {TOLERANCE_SECONDS} s is accepted"
        )
    if -age > TOLERANCE_SECONDS:
        raise WebhookAuthError(
            f"webhook-timestamp is {int(-age)} s in the future; check the sender's clock"
        )
    expected = sign(secret, webhook_id, int(stamp), body).encode()
    offered = _required(headers, "webhook-signature").split()
    matched = False
    for candidate in offered:
        # compare every candidate so the time taken does not depend on which one matched
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise WebhookAuthError(
            "no webhook-signature matches the body (wrong secret, or the body was altered)"
        )
    return webhook_id


def verify_basic(username: str, password: str, authorization: str) -> None:
    """Check an `Authorization: Basic` header against the configured user and password."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise WebhookAuthError("Authorization must be HTTP Basic")
    try:
        user, _, given = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        raise WebhookAuthError("Authorization Basic value is not valid base64") from None
    ok_user = hmac.compare_digest(user.encode(), username.encode())
    ok_password = hmac.compare_digest(given.encode(), password.encode())
    if not (ok_user and ok_password):
        raise WebhookAuthError("wrong webhook username or password")


def authenticate(config: BridgeConfig, headers: dict[str, str], body: bytes) -> WebhookCaller:
    """Accept a valid signature or matching Basic credentials; anything else is 401."""
    secret = config.get("Webhook Secret")
    username, password = config.get("Webhook Username"), config.get("Webhook Password")
    basic_ready = bool(username and password)
    signed = any(h in headers for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    authorization = headers.get("authorization")
    failure: WebhookAuthError | None = None
    if signed:
        if secret:
            try:
                webhook_id = verify_signature(secret, headers, body)
                return WebhookCaller("signature", webhook_id, body)
            except WebhookAuthError as exc:
                failure = exc
        else:
            failure = WebhookAuthError(
                "signed webhooks are not configured: set SAP Integration - Webhook Secret"
            )
    if authorization:
        if not basic_ready:
            raise failure or WebhookAuthError(
                "HTTP Basic is not configured: set SAP Integration - Webhook Username/Password"
            )
        assert username is not None and password is not None
        verify_basic(username, password, authorization)
        return WebhookCaller("basic", headers.get("webhook-id") or None, body)
    if failure is not None:
        raise failure
    if not secret and not basic_ready:
        raise WebhookAuthError(
            "the payment webhook is not configured: set SAP Integration - Webhook Secret "
            "or Webhook Username/Password"
        )
    raise WebhookAuthError(
        "missing credentials: send webhook-id, webhook-timestamp and webhook-signature "
        "(Standard Webhooks) or HTTP Basic credentials"
    )


def _required(headers: dict[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise WebhookAuthError(f"missing {name} header")
    return value


async def require_webhook_caller(request: Request) -> WebhookCaller:
    """Dependency: authenticate the webhook against the raw body bytes."""
    runtime: ConfigRuntime = request.app.state.runtime  # async all the way: the webhook is hot
    body = await request.body()
    config = await runtime.config.snapshot(runtime.sessions)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return authenticate(config, headers, body)


WebhookCallerDep = Annotated[WebhookCaller, Depends(require_webhook_caller)]
