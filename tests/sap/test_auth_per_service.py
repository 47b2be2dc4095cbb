"""Authentication per SAP service: Basic for the posting service by default (its WSDL policy
offers Basic or a certificate, not OAuth), OAuth for the reads, a client certificate over real
TLS on loopback, and the migration that keeps installations configured before on OAuth."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import credentials
from app.config.keys import PREFIX
from app.config.service import BridgeConfig
from app.platform.local_server import serve
from app.platform.metrics import REGISTRY
from app.sap.client import SapClient
from app.sap.errors import SapConfigurationError
from app.sap.journal_entry import GLItem, JournalEntry
from app.shell.migrate import upgrade
from sapsim.app import create_sim_app
from sapsim.config import SimConfig
from tests.support.certs import CertificateAuthority


def config(base_url: str, **changes: str | None) -> BridgeConfig:
    values: dict[str, str | None] = {
        "Enabled": "true",
        "Base URL": base_url,
        "Client ID": "sim-client",
        "Client Secret": "sim-secret",
        "Company Code": "1000",
        "AR Account": "12100000",
        "Revenue Account": "41000000",
        "Timeout Seconds": "5",
        "Max Concurrent Calls": "2",
    } | changes
    return BridgeConfig({PREFIX + k: v for k, v in values.items() if v is not None})


def entry(n: int = 1) -> JournalEntry:
    return JournalEntry(
        company_code="1000",
        document_date=date(2026, 3, 14),
        posting_date=date(2026, 3, 15),
        currency="LKR",
        currency_decimals=2,
        document_reference_id=f"HBAUTH{n:010d}",
        header_text="HMIS bill AUTH",
        reference1="AUTH-1",
        created_by="HMIS_COMM",
        document_type="DR",
        message_id=f"HBAUTH{n:010d}-1",
        items=(GLItem("12100000", Decimal("100.00")), GLItem("41000000", Decimal("-100.00"))),
        debtor_items=(),
    )


def test_each_service_has_its_method_and_the_older_setting_means_both() -> None:
    fresh = config("https://sap.example.com")
    assert (fresh.auth_method("posting"), fresh.auth_method("read")) == ("basic", "oauth")
    legacy = config("https://sap.example.com", **{"Auth Method": "oauth"})
    assert (legacy.auth_method("posting"), legacy.auth_method("read")) == ("oauth", "oauth")
    chosen = config(
        "https://sap.example.com",
        **{"Auth Method": "oauth", "Posting Auth Method": "certificate"},
    )
    assert chosen.auth_method("posting") == "certificate"
    assert chosen.missing_for_sap() == [
        PREFIX + "Client Certificate",
        PREFIX + "Client Certificate Key",
    ]


async def test_by_default_postings_use_basic_and_reads_oauth_on_a_tenant_that_follows_its_wsdl(
    sim: httpx.Client,
) -> None:
    sim.put("/sim/faults", json={"soap_basic_only": True}).raise_for_status()
    url = str(sim.base_url).rstrip("/")
    client = SapClient()
    try:
        posted = await client.post_journal_entry(config(url), entry())
        assert client.token_fetches == 0  # Basic: no token for the posting
        found = await client.find_journal_entries(config(url), "1000", "HBAUTH0000000001")
        assert [d.accounting_document for d in found] == [posted.accounting_document]
        assert client.token_fetches == 1  # the read used OAuth
        with pytest.raises(SapConfigurationError, match="set Posting Auth Method to basic"):
            await client.post_journal_entry(config(url, **{"Auth Method": "oauth"}), entry(2))
    finally:
        await client.aclose()


# ------------------------------------------------------------ client certificate over TLS


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
def mtls_sap(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The simulator behind TLS that requires a client certificate issued by `ca`."""
    server_cert, server_key = ca.issue("127.0.0.1", server=True).write(tmp_path, "server")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the bridge trusts the test CA
    app = create_sim_app(SimConfig(certificate_clients=True))
    with serve(
        app,
        ssl_certfile=str(server_cert),
        ssl_keyfile=str(server_key),
        ssl_ca_certs=str(ca_file),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as url:
        yield url


def certificate_config(url: str, certificate: str, key: str) -> BridgeConfig:
    return config(
        url,
        **{
            "Posting Auth Method": "certificate",
            "Read Auth Method": "certificate",
            "Client ID": None,
            "Client Secret": None,
            "Client Certificate": certificate,
            "Client Certificate Key": key,
        },
    )


async def test_a_client_certificate_the_tenant_trusts_posts_and_reads(
    ca: CertificateAuthority, mtls_sap: str
) -> None:
    issued = ca.issue("HMIS_COMM")
    settings = certificate_config(mtls_sap, issued.certificate, issued.key)
    client = SapClient()
    try:
        posted = await client.post_journal_entry(settings, entry())
        found = await client.find_journal_entries(settings, "1000", "HBAUTH0000000001")
        assert [d.accounting_document for d in found] == [posted.accounting_document]
        await asyncio.sleep(0.05)  # one certificate client serves both services, none closed
        await client.post_journal_entry(settings, entry(2))
        assert client.token_fetches == 0
    finally:
        await client.aclose()
    expiry = REGISTRY.get_sample_value("bridge_sap_client_certificate_expiry_timestamp_seconds")
    assert expiry == credentials.expires_at(issued.certificate).timestamp()


async def test_a_certificate_the_tenant_does_not_trust_is_a_configuration_error(
    mtls_sap: str,
) -> None:
    stranger = CertificateAuthority("Someone Else's CA").issue("HMIS_COMM")
    client = SapClient()
    try:
        with pytest.raises(SapConfigurationError, match="refused the bridge's client certificate"):
            await client.post_journal_entry(
                certificate_config(mtls_sap, stranger.certificate, stranger.key), entry()
            )
    finally:
        await client.aclose()


# ------------------------------------------------------------ saving a certificate


async def test_certificates_and_keys_are_checked_when_saved(
    bridge, ca: CertificateAuthority
) -> None:
    good, other = ca.issue("HMIS_COMM"), ca.issue("OTHER")
    expired = ca.issue("OLD", valid_for=timedelta(days=-1), valid_from=timedelta(days=30))
    cert_key, key_key = PREFIX + "Client Certificate", PREFIX + "Client Certificate Key"
    async with bridge.admin() as admin:

        async def put(key: str, value: str) -> httpx.Response:
            return await admin.put(f"/config/{key}", json={"value": value})

        refused = await put(key_key, good.key)
        assert refused.status_code == 422 and "save the" in refused.json()["detail"]
        refused = await put(cert_key, "-----BEGIN CERTIFICATE-----\nnope\n")
        assert refused.status_code == 422 and "is not a PEM X.509" in refused.json()["detail"]
        refused = await put(cert_key, expired.certificate)
        assert refused.status_code == 422 and "expired on" in refused.json()["detail"]
        assert (await put(cert_key, good.certificate)).status_code == 200
        refused = await put(key_key, other.key)
        assert refused.status_code == 422 and "does not belong" in refused.json()["detail"]
        refused = await put(key_key, "not a key")
        assert refused.status_code == 422 and "is not a PEM private key" in refused.json()["detail"]
        saved = await put(key_key, good.key)
        assert saved.status_code == 200 and saved.json()["value"] == "********"
        shown = (await admin.get("/config")).json()
    assert "BEGIN" not in str(shown)


async def test_ready_shows_the_certificate_expiry_and_stays_ok(bridge, ca: CertificateAuthority):
    soon = ca.issue("HMIS_COMM", valid_for=timedelta(days=20, hours=12))
    async with bridge.admin() as admin:
        pairs = (
            ("Client Certificate", soon.certificate),
            ("Client Certificate Key", soon.key),
            ("Posting Auth Method", "certificate"),
        )
        for key, value in pairs:
            saved = await admin.put(f"/config/{PREFIX}{key}", json={"value": value})
            assert saved.status_code == 200, saved.text
        ready = await admin.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    sap = ready.json()["sap"]
    assert sap["circuit"] == "closed" and sap["posting_auth"] == "certificate"
    assert sap["client_certificate"].startswith("warning: expires on ")
    assert "in 20 days" in sap["client_certificate"]


# ------------------------------------------------------------ migration 0009


@pytest.mark.parametrize(("configured", "expected"), [(True, "oauth"), (False, None)])
async def test_installations_configured_before_keep_oauth(
    tmp_path: Path, configured: bool, expected: str | None
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/legacy.db"
    await upgrade(url, "0008")
    engine = create_async_engine(url)
    if configured:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO config_entries (key, value, is_secret, updated_at, updated_by) "
                    "VALUES (:key, 'sim-client', false, :at, 'admin')"
                ),
                {"key": PREFIX + "Client ID", "at": datetime.now(UTC)},
            )
    await upgrade(url, "head")
    async with engine.connect() as conn:
        method = await conn.scalar(
            text("SELECT value FROM config_entries WHERE key = :key"),
            {"key": PREFIX + "Auth Method"},
        )
    await engine.dispose()
    assert method == expected
