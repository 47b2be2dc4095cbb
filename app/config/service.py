"""The business settings: validated, encrypted at rest, audited, cached for the hot path."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import credentials, repository
from app.config.crypto import SecretBox
from app.config.keys import MASK, PREFIX, SPECS, InvalidValue
from app.config.models import ConfigAudit, ConfigEntry, RevenueRule
from app.platform.db import SessionFactory, utcnow
from app.platform.errors import InvalidInputError, NotFoundError
from app.platform.logging import get_logger


@dataclass(frozen=True)
class Rule:
    """Revenue account assignment of one department."""

    gl_account: str
    profit_center: str | None = None
    cost_center: str | None = None


@dataclass(frozen=True)
class BridgeConfig:
    """A consistent snapshot of every business setting, secrets decrypted."""

    values: dict[str, str | None]
    rules: dict[str, Rule] = field(default_factory=dict)

    def get(self, short: str) -> str | None:
        return self.values.get(PREFIX + short)

    def require(self, short: str) -> str:
        value = self.get(short)
        if value is None:
            raise KeyError(PREFIX + short)
        return value

    @property
    def enabled(self) -> bool:
        return self.get("Enabled") == "true"

    def integer(self, short: str) -> int:
        return int(self.require(short))

    @property
    def token_url(self) -> str:
        return self.get("Token URL") or f"{self.require('Base URL')}/sap/bc/sec/oauth2/token"

    def auth_method(self, service: credentials.Service) -> str:
        """How the bridge authenticates to this SAP service: its own setting, else the older
        `Auth Method` (both services), else the default that follows SAP's WSDL policy."""
        return (
            self.get(f"{service.capitalize()} Auth Method")
            or self.get("Auth Method")
            or credentials.DEFAULTS[service]
        )

    def missing_for_sap(self) -> list[str]:
        """Keys SAP calls need that are not set (the credentials of the methods in use)."""
        methods = {self.auth_method("posting"), self.auth_method("read")}
        needed = [s.name for s in SPECS.values() if s.required_for_sap]
        if methods - {"certificate"}:
            needed += [PREFIX + "Client ID", PREFIX + "Client Secret"]
        if "certificate" in methods:
            needed += [PREFIX + "Client Certificate", PREFIX + "Client Certificate Key"]
        return [name for name in needed if not self.values.get(name)]


Listener = Callable[[BridgeConfig], Awaitable[None]]
_log = get_logger("app.config")


class ConfigService:
    """Reads and changes the settings; other replicas see a change within `ttl` seconds."""

    def __init__(self, box: SecretBox, *, allow_insecure_urls: bool, ttl: float = 2.0) -> None:
        self.box = box
        self.allow_insecure_urls = allow_insecure_urls
        self.ttl = ttl
        self._cached: tuple[float, BridgeConfig] | None = None
        self._listeners: list[Listener] = []
        self._refresh = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._generation = 0  # bumped by every change, so a refresh begun before it is dropped

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def snapshot(self, factory: SessionFactory) -> BridgeConfig:
        """The current settings, from a short-lived cache refreshed by one caller at a time.

        A cache up to twice `ttl` old is answered at once while a background task refreshes
        it, so on a busy replica no request queues behind the refresh; an older cache (an
        idle replica) or none is refreshed before answering.
        """
        if self._cached:
            age = time.monotonic() - self._cached[0]
            if age < self.ttl:
                return self._cached[1]
            if age < 2 * self.ttl:
                if self._background is None or self._background.done():
                    self._background = asyncio.create_task(self._refresh_quietly(factory))
                return self._cached[1]
        return await self._reload(factory)

    def cached(self) -> BridgeConfig | None:
        """The last settings read, however old; None before the first read."""
        return self._cached[1] if self._cached else None

    async def aclose(self) -> None:
        """Let a background refresh finish, so it never holds a connection past shutdown."""
        if self._background is not None:
            await asyncio.gather(self._background, return_exceptions=True)

    async def _reload(self, factory: SessionFactory) -> BridgeConfig:
        async with self._refresh:
            if self._cached and time.monotonic() - self._cached[0] < self.ttl:
                return self._cached[1]  # another caller refreshed it meanwhile
            generation = self._generation
            async with factory() as session:
                config = await self.load(session)
            if generation == self._generation:  # not dropped by a change meanwhile
                self._cached = (time.monotonic(), config)
            return config

    async def _refresh_quietly(self, factory: SessionFactory) -> None:
        try:
            await self._reload(factory)
        except Exception as exc:  # the next request retries it, and reports what failed
            _log.warning("config.refresh_failed", error=type(exc).__name__)

    async def load(self, session: AsyncSession) -> BridgeConfig:
        entries = await repository.all_entries(session)
        values: dict[str, str | None] = {}
        for name, spec in SPECS.items():
            entry = entries.get(name)
            if entry is None:
                values[name] = spec.default
            else:
                values[name] = self.box.decrypt(entry.value) if entry.is_secret else entry.value
        rules = {
            r.department: Rule(r.gl_account, r.profit_center, r.cost_center)
            for r in await repository.revenue_rules(session)
        }
        return BridgeConfig(values, rules)

    async def masked(self, session: AsyncSession) -> dict[str, Any]:
        """Every key with its value, secrets shown as ********."""
        config = await self.load(session)
        return {
            name: (MASK if spec.secret and config.values[name] else config.values[name])
            for name, spec in SPECS.items()
        }

    async def set_value(
        self, session: AsyncSession, key: str, value: Any, *, actor: str, request_id: str | None
    ) -> str | None:
        """Validate and store one key (None resets it to its default); audited."""
        spec = SPECS.get(key)
        if spec is None:
            raise NotFoundError(f"unknown configuration key {key!r}; GET /config lists the keys")
        new = None if value is None else self._validate(key, value)
        if new is not None and key == PREFIX + "Client Certificate Key":
            await self._check_key_pair(session, new)
        entry = await repository.get_entry(session, key)
        old = None
        if entry is not None:
            old = self.box.decrypt(entry.value) if entry.is_secret else entry.value
        if new is None:
            if entry is not None:
                await session.delete(entry)
        else:
            stored = self.box.encrypt(new) if spec.secret else new
            if entry is None:
                session.add(
                    ConfigEntry(
                        key=key,
                        value=stored,
                        is_secret=spec.secret,
                        updated_by=actor,
                        updated_at=utcnow(),
                    )
                )
            else:
                entry.value, entry.updated_by, entry.updated_at = stored, actor, utcnow()
        session.add(
            ConfigAudit(
                key=key,
                old_value=self._mask(spec.secret, old),
                new_value=self._mask(spec.secret, new),
                actor=actor,
                request_id=request_id,
            )
        )
        return self._mask(spec.secret, new if new is not None else spec.default)

    async def set_revenue_rules(
        self, session: AsyncSession, rules: list[RevenueRule], *, actor: str, request_id: str | None
    ) -> None:
        departments = [r.department for r in rules]
        if len(set(departments)) != len(departments):
            raise InvalidInputError("each department may appear only once in the revenue rules")
        old = [f"{r.department}={r.gl_account}" for r in await repository.revenue_rules(session)]
        await repository.replace_revenue_rules(session, rules)
        session.add(
            ConfigAudit(
                key="revenue-rules",
                old_value=", ".join(old) or None,
                new_value=", ".join(f"{r.department}={r.gl_account}" for r in rules),
                actor=actor,
                request_id=request_id,
            )
        )

    async def changed(self, factory: SessionFactory) -> None:
        """Drop the cache and tell listeners (scheduler, SAP client) after a committed change."""
        self._cached, self._generation = None, self._generation + 1
        config = await self.snapshot(factory)
        for listener in self._listeners:
            await listener(config)

    async def _check_key_pair(self, session: AsyncSession, key_pem: str) -> None:
        """A key is checked against the stored certificate: save the certificate first."""
        name = PREFIX + "Client Certificate Key"
        stored = await repository.get_entry(session, PREFIX + "Client Certificate")
        if stored is None:
            raise InvalidInputError(
                f"{name}: save the {PREFIX}Client Certificate first; the key is checked against it",
                key=name,
            )
        try:
            credentials.check_pair(self.box.decrypt(stored.value), key_pem)
        except credentials.CertificateError as exc:
            raise InvalidInputError(f"{name} {exc}", key=name) from None

    def _validate(self, key: str, value: Any) -> str:
        try:
            text = SPECS[key].validate(value)
        except InvalidValue as exc:
            raise InvalidInputError(f"{key} {exc}", key=key) from None
        if (
            key.endswith("URL")
            and not self.allow_insecure_urls
            and urlparse(text).scheme != "https"
        ):
            raise InvalidInputError(
                f"{key} must use https "
                "(BRIDGE_ALLOW_INSECURE_SAP_URLS=true is for a simulator only)",
                key=key,
            )
        return text

    @staticmethod
    def _mask(secret: bool, value: str | None) -> str | None:
        return MASK if secret and value is not None else value


# --- the change trail (read only) -----------------------------------------------------------

#: the audit key of the revenue rules (`PUT /config/revenue-rules`)
RULES_KEY = "revenue-rules"
_AUDIT_CURSOR = "audit:"


@dataclass(frozen=True)
class AuditRecord:
    """One change of a setting, its values shown as `GET /config` shows them."""

    id: int
    key: str
    old_value: str | None
    new_value: str | None
    actor: str
    request_id: str | None
    changed_at: datetime


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: str | None


async def audit_trail(
    session: AsyncSession, key: str | None, cursor: str | None, limit: int
) -> AuditPage:
    """The settings' changes newest first, of one key when given (full name, or the part after
    `SAP Integration - ` as `bridge config` takes it); keyset paging by `cursor`."""
    if key is not None and any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInputError("key: contains a control character", field="key")
    before = _decode_audit_cursor(cursor) if cursor else None
    rows = await repository.audit_page(session, audit_key(key), before, limit + 1)
    records = [_record(row) for row in rows[:limit]]
    more = len(rows) > limit and records
    return AuditPage(records, _encode_audit_cursor(records[-1].id) if more else None)


def audit_key(key: str | None) -> str | None:
    """The stored key a filter means: a key as given when the bridge knows it (or one it no
    longer knows: the trail keeps them), `Company Code` for `SAP Integration - Company Code`."""
    if key is None or key in SPECS or key == RULES_KEY:
        return key
    return PREFIX + key if PREFIX + key in SPECS else key


def _record(row: ConfigAudit) -> AuditRecord:
    spec = SPECS.get(row.key)
    secret = spec is not None and spec.secret
    return AuditRecord(
        id=row.id,
        key=row.key,
        # written masked; masked again as GET /config masks, whatever wrote the row
        old_value=MASK if secret and row.old_value else row.old_value,
        new_value=MASK if secret and row.new_value else row.new_value,
        actor=row.actor,
        request_id=row.request_id,
        changed_at=row.changed_at,
    )


def _encode_audit_cursor(audit_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_AUDIT_CURSOR}{audit_id}".encode()).decode().rstrip("=")


def _decode_audit_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    number = text.removeprefix(_AUDIT_CURSOR)
    valid = text.startswith(_AUDIT_CURSOR) and number.isascii() and number.isdigit()
    if not valid or len(number) > 10 or int(number) > _MAX_ID:
        raise InvalidInputError("cursor: not a cursor this service issued", field="cursor")
    return int(number)


_MAX_ID = 2**31 - 1  # the id column is a 32-bit integer
