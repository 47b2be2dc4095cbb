"""The business settings HMIS keeps in its Application Configuration: names, types, validation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from apscheduler.triggers.cron import CronTrigger

from app.config import credentials
from app.platform import currency

PREFIX = "SAP Integration - "
MASK = "********"


class InvalidValue(ValueError):
    """A config value that does not fit its key."""


def _bool(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return "true"
    if text in {"false", "0", "no", "off"}:
        return "false"
    raise InvalidValue("must be true or false")


def _text(max_len: int, pattern: str | None = None, hint: str = "") -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidValue("must be text")
        text = str(value).strip()
        if not text:
            raise InvalidValue("must not be empty")
        if len(text) > max_len:
            raise InvalidValue(f"must be at most {max_len} characters")
        if pattern and not re.fullmatch(pattern, text):
            raise InvalidValue(hint or f"must match {pattern}")
        return text

    return check


def _url(value: Any) -> str:
    text = _text(2048)(value).rstrip("/")
    parsed = urlparse(text)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InvalidValue(
            "must be an absolute http(s) URL such as https://my000000-api.s4hana.cloud.sap"
        )
    if parsed.query or parsed.fragment or parsed.username:
        raise InvalidValue("must not carry a query, fragment or credentials")
    return text


def _int(low: int, high: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise InvalidValue("must be a whole number") from None
        if isinstance(value, float) and value != number:
            raise InvalidValue("must be a whole number")
        if not low <= number <= high:
            raise InvalidValue(f"must be between {low} and {high}")
        return str(number)

    return check


def _cron(value: Any) -> str:
    text = _text(100)(value)
    try:
        trigger = CronTrigger.from_crontab(text, timezone="UTC")
    except ValueError as exc:
        raise InvalidValue(f"is not a valid 5-field cron expression ({exc})") from None
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:  # e.g. 30 February
        raise InvalidValue("never fires (no such date): check the day and month fields")
    return text


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(50)(value).lower()
        if text not in options:
            raise InvalidValue("must be one of " + ", ".join(options))
        return text

    return check


def _currency(value: Any) -> str:
    text = _text(3)(value).upper()
    if not currency.is_known(text):
        raise InvalidValue("must be an active ISO 4217 currency code such as LKR")
    return text


def _pem(check: Callable[[str], object]) -> Callable[[Any], str]:
    """PEM text that `check` accepts (it raises CertificateError naming what is wrong)."""

    def validate(value: Any) -> str:
        text = _text(20000)(value)
        try:
            check(text)
        except credentials.CertificateError as exc:
            raise InvalidValue(str(exc)) from None
        return text

    return validate


_ACCOUNT = _text(10, r"[A-Z0-9]{1,10}", "must be a SAP account number: 1-10 letters or digits")
_PARTNER = _text(10, r"[A-Z0-9-]{1,10}", "must be a SAP customer number: 1-10 letters, digits or -")
_ORG_UNIT = _text(10, r"[A-Z0-9]{1,10}", "must be 1-10 letters or digits")


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: its validator, default and whether it is a secret."""

    name: str
    validate: Callable[[Any], str]
    default: str | None = None
    secret: bool = False
    required_for_sap: bool = False


def _spec(short: str, validate: Callable[[Any], str], **kw: Any) -> KeySpec:
    return KeySpec(PREFIX + short, validate, **kw)


SPECS: dict[str, KeySpec] = {
    spec.name: spec
    for spec in (
        _spec("Enabled", _bool, default="false"),
        _spec("Base URL", _url, required_for_sap=True),
        # where set, the method of both services (the setting before there were two)
        _spec("Auth Method", _choice("oauth", "basic")),
        _spec("Posting Auth Method", _choice(*credentials.METHODS)),
        _spec("Read Auth Method", _choice(*credentials.METHODS)),
        _spec("Token URL", _url),
        _spec("Client ID", _text(200)),
        _spec("Client Secret", _text(500), secret=True),
        _spec("Client Certificate", _pem(credentials.check_certificate), secret=True),
        _spec("Client Certificate Key", _pem(credentials.load_key), secret=True),
        _spec(
            "Company Code",
            _text(4, r"[A-Z0-9]{1,4}", "must be 1-4 letters or digits"),
            required_for_sap=True,
        ),
        _spec("AR Account", _ACCOUNT, required_for_sap=True),
        _spec("AR Customer", _PARTNER),
        _spec("Revenue Account", _ACCOUNT, required_for_sap=True),
        _spec("Currency", _currency, default="LKR"),
        _spec(
            "Webhook Secret",
            _text(200, r"whsec_[A-Za-z0-9+/=]{16,}", "must be whsec_ followed by a base64 key"),
            secret=True,
        ),
        _spec("Webhook Username", _text(100)),
        _spec("Webhook Password", _text(200), secret=True),
        _spec("Clearing Sync Cron", _cron, default="*/15 * * * *"),
        _spec("Max Concurrent Calls", _int(1, 64), default="4"),
        _spec("Timeout Seconds", _int(1, 600), default="60"),
        _spec("Material Code Field", _choice("code", "barcode"), default="code"),
        _spec("Inventory Sync Cron", _cron, default="0 2 * * *"),
        _spec("Inventory Sync From Days", _int(1, 366), default="7"),
        _spec("Plant", _ORG_UNIT),
    )
}
