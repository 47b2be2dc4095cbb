"""Signing in to the console: the admin key, once, for a signed session cookie.

The cookie holds no key, only a random CSRF token and the time it was issued, signed with a key
derived from the admin key and the encryption key: changing the admin key ends every session.
It is `HttpOnly`, `SameSite=Strict`, `Secure` over https, and expires after
`BRIDGE_CONSOLE_SESSION_HOURS`. Every form posts the CSRF token back, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass

from fastapi import Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.responses import Response

from app.platform.settings import Settings

SESSION_COOKIE = "bridge_console"
#: the sign-in form's own token, before there is a session (login CSRF)
SIGN_IN_COOKIE = "bridge_console_sign_in"
PATH = "/console"
#: wrong keys allowed per client address within the window, before sign-in answers 429
FAILURES_ALLOWED, FAILURE_WINDOW_SECONDS = 5, 300.0


@dataclass(frozen=True)
class ConsoleSession:
    csrf: str
    issued_at: float


#: why the sign-in page is shown: only these fixed texts, never one a link could carry
REASONS = {
    "required": "Sign in with the admin key to use the console.",
    "expired": "Your session expired: sign in again.",
    "invalid": "Your session is no longer valid: sign in again.",
    "signed-out": "You signed out.",
}


class NotSignedIn(Exception):
    """No session, an expired one, or one signed with another key: the page says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    secret = hashlib.sha256(
        b"hmis-sap-bridge console\0"
        + settings.admin_api_key.get_secret_value().encode()
        + b"\0"
        + settings.encryption_key.get_secret_value().encode()
    ).hexdigest()
    return URLSafeTimedSerializer(secret, salt=salt)


def key_matches(settings: Settings, given: str) -> bool:
    expected = settings.admin_api_key.get_secret_value()
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def issue(settings: Settings, response: Response, request: Request) -> None:
    """Start a session on `response`."""
    token = _serializer(settings, "session").dumps({"csrf": secrets.token_urlsafe(24)})
    _set(response, request, SESSION_COOKIE, token, int(settings.console_session_hours * 3600))
    response.delete_cookie(SIGN_IN_COOKIE, path=PATH)


def end(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PATH)


def current(settings: Settings, request: Request) -> ConsoleSession:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotSignedIn("required")
    max_age = int(settings.console_session_hours * 3600)
    try:
        data, issued = _serializer(settings, "session").loads(
            token, max_age=max_age, return_timestamp=True
        )
    except SignatureExpired:
        raise NotSignedIn("expired") from None
    except BadSignature:
        raise NotSignedIn("invalid") from None
    return ConsoleSession(csrf=str(data["csrf"]), issued_at=issued.timestamp())


def sign_in_token(settings: Settings, request: Request) -> str:
    """The sign-in form's CSRF token (the one its cookie holds, or a new one)."""
    token = request.cookies.get(SIGN_IN_COOKIE)
    if token and _valid_sign_in_token(settings, token):
        return token
    return _serializer(settings, "sign-in").dumps(secrets.token_urlsafe(16))


def keep_sign_in_token(response: Response, request: Request, token: str) -> None:
    _set(response, request, SIGN_IN_COOKIE, token, 3600)


def sign_in_token_ok(settings: Settings, request: Request, posted: str) -> bool:
    cookie = request.cookies.get(SIGN_IN_COOKIE, "")
    return (
        bool(posted)
        and hmac.compare_digest(cookie.encode(), posted.encode())
        and _valid_sign_in_token(settings, posted)
    )


def _valid_sign_in_token(settings: Settings, token: str) -> bool:
    try:
        _serializer(settings, "sign-in").loads(token, max_age=3600)
    except BadSignature:
        return False
    return True


def csrf_ok(session: ConsoleSession, posted: str | None) -> bool:
    return bool(posted) and hmac.compare_digest(session.csrf.encode(), (posted or "").encode())


def _set(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


class SignInLimiter:
    """Wrong keys per client address in a sliding window (per process: each replica counts its
    own, which bounds guessing at replicas × FAILURES_ALLOWED per window)."""

    def __init__(
        self, allowed: int = FAILURES_ALLOWED, window: float = FAILURE_WINDOW_SECONDS
    ) -> None:
        self.allowed, self.window = allowed, window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until `client` may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        failures = self._failures.get(client)
        if not failures:
            return 0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.allowed:
            return 0
        return max(1, int(failures[0] + self.window - now + 0.999))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) > 10_000:  # bounded: forget the quietest addresses first
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, deque()).append(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
