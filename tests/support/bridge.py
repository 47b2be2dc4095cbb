"""Start the bridge against a test database and the simulator, configured like a tenant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import create_async_engine

from app.config.crypto import SecretBox
from app.config.keys import PREFIX
from app.config.models import RevenueRule
from app.config.service import ConfigService
from app.platform.db import make_session_factory
from app.platform.local_server import serve
from app.platform.settings import Settings
from app.shell.main import create_app
from app.shell.runtime import build_runtime, close_runtime

API_KEY = "test-hmis-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
ENCRYPTION_KEY = Fernet.generate_key().decode()

RULES = [
    RevenueRule(department="LAB", gl_account="41000100", profit_center="PC100"),
    RevenueRule(department="OPD", gl_account="41000200", profit_center="PC200"),
    RevenueRule(department="PHARM", gl_account="41000300", profit_center="PC300"),
]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values = {
        "DATABASE_URL": database_url,
        "BRIDGE_API_KEY": API_KEY,
        "BRIDGE_ADMIN_API_KEY": ADMIN_KEY,
        "BRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "BRIDGE_SCHEDULER_ENABLED": False,
        "BRIDGE_LOG_FORMAT": "console",
        "BRIDGE_ALLOW_INSECURE_SAP_URLS": True,
        "BRIDGE_OUTBOX_POLL_SECONDS": 0.05,
        "BRIDGE_RETRY_BASE_SECONDS": 0.05,
        "BRIDGE_RETRY_MAX_SECONDS": 0.5,
        "BRIDGE_CIRCUIT_OPEN_SECONDS": 0.2,
        "BRIDGE_LEASE_SECONDS": 3,
        "BRIDGE_AMBIGUOUS_SETTLE_SECONDS": 0,
        "BRIDGE_METRICS_CACHE_SECONDS": 0,  # each scrape reads the database: tests compare two
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def sim_config(sim_url: str, **overrides: str) -> dict[str, str]:
    values = {
        "Enabled": "true",
        "Base URL": sim_url,
        "Auth Method": "oauth",
        "Client ID": "sim-client",
        "Client Secret": "sim-secret",
        "Company Code": "1000",
        "AR Account": "12100000",
        "Revenue Account": "41000000",
        "Currency": "LKR",
        "Timeout Seconds": "5",
        "Max Concurrent Calls": "4",
    }
    values.update(overrides)
    return {PREFIX + k: v for k, v in values.items()}


async def seed_config(
    settings: Settings, values: dict[str, str], rules: list[RevenueRule] | None = None
) -> None:
    """Write settings straight into the store, as an operator's PUT /config would."""
    engine = create_async_engine(settings.database_url)
    service = ConfigService(
        SecretBox(settings.encryption_key.get_secret_value()), allow_insecure_urls=True
    )
    async with make_session_factory(engine)() as session, session.begin():
        for key, value in values.items():
            await service.set_value(session, key, value, actor="test", request_id=None)
        if rules is not None:
            await service.set_revenue_rules(
                session,
                [
                    RevenueRule(
                        **{
                            c: getattr(r, c)
                            for c in ("department", "gl_account", "profit_center", "cost_center")
                        }
                    )
                    for r in rules
                ],
                actor="test",
                request_id=None,
            )
    await engine.dispose()


@dataclass
class Bridge:
    """A running bridge: its URL, settings and ready-made clients."""

    url: str
    settings: Settings
    app: Any = field(repr=False)

    def client(self, key: str | None = API_KEY, **kw: Any) -> httpx.AsyncClient:
        headers = {"X-API-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60, **kw)

    def admin(self) -> httpx.AsyncClient:
        return self.client(ADMIN_KEY)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


@contextlib.asynccontextmanager
async def replica(url: str, **overrides: Any) -> AsyncIterator[Any]:
    """One bridge process's resources (engine, pool, config cache, SAP client), no HTTP."""
    runtime = build_runtime(make_settings(url, **overrides))
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


@contextlib.contextmanager
def run_bridge(settings: Settings) -> Iterator[Bridge]:
    app = create_app(settings)
    with serve(app) as url:
        yield Bridge(url, settings, app)


def seed(
    settings: Settings, values: dict[str, str], rules: list[RevenueRule] | None = None
) -> None:
    asyncio.run(seed_config(settings, values, rules))


def bill(reference: str = "HMIS-2024-001234", **overrides: Any) -> dict[str, Any]:
    """A valid HMIS bill body (two departments, LKR 15,000.00)."""
    body: dict[str, Any] = {
        "reference": reference,
        "bill_date": "2024-03-15",
        "currency": "LKR",
        "net_total": "15000.00",
        "items": [
            {
                "line_id": "1",
                "description": "Consultation",
                "net_value": "5000.00",
                "department": "OPD",
            },
            {
                "line_id": "2",
                "description": "Full blood count",
                "net_value": "10000.00",
                "department": "LAB",
            },
        ],
        "payer": {"name": "J. Perera", "customer": None},
    }
    body.update(overrides)
    return body


@contextlib.contextmanager
def custom_bridge(db_url: str, sim: httpx.Client | None, **settings: Any) -> Iterator[Bridge]:
    """A bridge with changed infrastructure settings (configured for the simulator if given)."""
    values = make_settings(db_url, **settings)
    if sim is not None:
        seed(values, sim_config(str(sim.base_url).rstrip("/")), RULES)
    with run_bridge(values) as running:
        yield running
