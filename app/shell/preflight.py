"""The go-live preflight (`bridge sap-check`, `GET /health/sap`): what is misconfigured, in the
order a first contact with a tenant fails, each with what to do.

Every step talks to the tenant the way the bridge will (same client, same auth per service), so
a pass means the bridge's own calls work, not only that the host answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import certifi
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from app.config import credentials
from app.config.service import BridgeConfig
from app.platform import currency
from app.sap import clearing, material_documents
from app.sap.client import ARRANGEMENTS, CUBE_PATH, LINE_FIELDS, SapClient
from app.sap.errors import SapError, SapRejectedError
from app.sap.journal_entry import SERVICE_PATH, DebtorItem, GLItem, JournalEntry

Status = Literal["pass", "warn", "fail"]
#: the webhook signature tolerance: a clock further off than this refuses every webhook
CLOCK_FAIL_SECONDS = 300
CLOCK_WARN_SECONDS = 60


@dataclass(frozen=True)
class Check:
    check: str
    status: Status
    detail: str
    remedy: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class _Seen:
    """What earlier steps learnt that later ones use."""

    sap_date: datetime | None = None
    measured_at: datetime | None = None


_CUBE_ENTITY = "A_OperationalAcctgDocItemCubeType"
_CUBE_FIELDS = frozenset(
    {*LINE_FIELDS.split(","), *clearing.ITEM_FIELDS.split(","), *clearing.REFERENCE_FIELDS}
)
_MATERIAL_FIELDS = {
    "A_MaterialDocumentHeaderType": frozenset(material_documents.HEADER_FIELDS),
    "A_MaterialDocumentItemType": frozenset(material_documents.ITEM_FIELDS),
}
_CUBE_SERVICE = CUBE_PATH.rsplit("/", 1)[0]


async def run(sap: SapClient, config: BridgeConfig, *, today: date | None = None) -> list[Check]:
    """Every check, in order; a step that cannot run without an earlier one is skipped."""
    checks = [_settings(config)]
    if checks[0].status == "fail":
        return checks
    checks.append(_webhook_credentials(config))
    if not config.enabled:
        checks.append(
            Check(
                "integration",
                "warn",
                "the SAP integration is disabled: only the settings were checked",
                "set SAP Integration - Enabled to true to check the tenant",
            )
        )
        return checks
    seen = _Seen()
    network = await _network(config)
    checks.append(network)
    if network.status == "fail":
        return checks
    checks.append(await _authentication(sap, config))
    services = {name: await _service(sap, config, name, seen) for name in _SERVICES}
    checks.extend(services.values())
    if services["journal_entry_service"].status == "pass":
        checks.append(await _metadata(sap, config, _CUBE_SERVICE, {_CUBE_ENTITY: _CUBE_FIELDS}))
    if services["material_document_service"].status == "pass":
        checks.append(
            await _metadata(sap, config, material_documents.SERVICE_PATH, _MATERIAL_FIELDS)
        )
    if services["posting_service"].status == "pass":
        checks.append(await _test_posting(sap, config, today or datetime.now(UTC).date()))
    checks.append(_clock(seen))
    return checks


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0


# --- the steps -------------------------------------------------------------------------------


def _settings(config: BridgeConfig) -> Check:
    missing = config.missing_for_sap()
    if missing:
        return Check(
            "settings",
            "fail" if config.enabled else "warn",
            "missing " + ", ".join(missing),
            "set them with PUT /config/{key} (bridge config set KEY VALUE)",
        )
    methods = f"posting {config.auth_method('posting')}, reads {config.auth_method('read')}"
    return Check("settings", "pass", f"complete; authentication: {methods}")


def _webhook_credentials(config: BridgeConfig) -> Check:
    if config.get("Webhook Secret"):
        return Check("webhook_credentials", "pass", "Standard Webhooks signing secret set")
    if config.get("Webhook Username") and config.get("Webhook Password"):
        return Check("webhook_credentials", "pass", "Basic credentials set")
    return Check(
        "webhook_credentials",
        "fail",
        "no Webhook Secret and no Webhook Username/Password: every payment webhook is refused",
        "set SAP Integration - Webhook Secret (whsec_…) or Webhook Username and Password",
    )


async def _network(config: BridgeConfig) -> Check:
    url = urlsplit(config.require("Base URL"))
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(10):
            await loop.getaddrinfo(host, port)
    except (OSError, TimeoutError) as exc:
        return Check(
            "dns_tls",
            "fail",
            f"{host} does not resolve ({exc or 'no answer in 10 s'})",
            "check SAP Integration - Base URL (my000000-api.s4hana.cloud.sap) and the DNS",
        )
    if url.scheme != "https":
        return Check(
            "dns_tls", "warn", f"{host}:{port} resolves; plain http", "a real tenant is https"
        )
    context = ssl.create_default_context(cafile=_trusted_cas())
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "dns_tls",
            "fail",
            f"{host}'s TLS certificate is not trusted ({exc.verify_message})",
            "the bridge trusts certifi's CAs or SSL_CERT_FILE; a proxy that re-signs TLS needs "
            "its CA there",
        )
    except (OSError, TimeoutError) as exc:
        return Check(
            "dns_tls",
            "fail",
            f"no TLS connection to {host}:{port} ({type(exc).__name__}: {exc})",
            "check the Base URL's port and any firewall or proxy between the bridge and SAP",
        )
    return Check("dns_tls", "pass", f"{host}:{port} resolves and speaks {version}")


async def _authentication(sap: SapClient, config: BridgeConfig) -> Check:
    methods = {config.auth_method("posting"), config.auth_method("read")}
    notes = []
    status: Status = "pass"
    if "oauth" in methods:
        try:
            await sap.fetch_token(config)
        except SapError as error:
            return Check(
                "authentication",
                "fail",
                f"no OAuth token from {config.token_url}: {error.detail}",
                "check Client ID / Client Secret (the communication user of the arrangement) "
                "and Token URL",
            )
        notes.append("OAuth token obtained")
    if "basic" in methods:
        notes.append("Basic: the communication user is checked by each service below")
    if "certificate" in methods:
        verdict = credentials.expiry_verdict(config.require("Client Certificate"))
        notes.append(f"client certificate {verdict}")
        if not verdict.startswith("ok"):
            status = "fail" if verdict.startswith(("expired", "unusable")) else "warn"
    return Check(
        "authentication",
        status,
        "; ".join(notes),
        "" if status == "pass" else "renew the certificate in SAP and save it and its key",
    )


_SERVICES: dict[str, tuple[str, str, str]] = {
    # check: (path, arrangement, what the bridge needs it for)
    "posting_service": (f"{SERVICE_PATH}?wsdl", "SAP_COM_0002", "posting journal entries"),
    "journal_entry_service": (
        f"{_CUBE_SERVICE}/$metadata",
        ARRANGEMENTS["API_OPLACCTGDOCITEMCUBE_SRV"],
        "reading postings back and the clearing sync",
    ),
    "material_document_service": (
        f"{material_documents.SERVICE_PATH}/$metadata",
        ARRANGEMENTS["API_MATERIAL_DOCUMENT_SRV"],
        "the goods-receipt audit",
    ),
}


async def _service(sap: SapClient, config: BridgeConfig, check: str, seen: _Seen) -> Check:
    path, arrangement, purpose = _SERVICES[check]
    service: credentials.Service = "posting" if check == "posting_service" else "read"
    method = config.auth_method(service)
    try:
        response = await sap.probe(config, path, service=service)
    except SapError as error:
        return Check(check, "fail", f"no answer: {error.detail}", "check the Base URL and SAP")
    with contextlib.suppress(TypeError, ValueError):  # no Date, or one that does not parse
        stamp = parsedate_to_datetime(response.headers.get("date", ""))
        seen.sap_date = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)  # "-0000": UTC
        seen.measured_at = datetime.now(UTC)
    status = response.status_code
    if status == 200:
        return Check(check, "pass", f"answers for this user ({method}), {arrangement}")
    remedies = {
        401: f"the {method} credentials are refused: check the communication user of "
        f"{arrangement} (user, password or certificate)"
        + (
            "; the posting service's WSDL offers Basic or a certificate, not OAuth: set "
            "Posting Auth Method"
            if service == "posting" and method == "oauth"
            else ""
        ),
        403: f"the user is not assigned to {arrangement}: add the scenario to the "
        "communication arrangement",
        404: f"the service is not active on this tenant: create a communication arrangement "
        f"for {arrangement}",
    }
    return Check(
        check,
        "fail",
        f"HTTP {status} ({purpose} needs it)",
        remedies.get(status, f"SAP answered HTTP {status}; see SAP's logs for {arrangement}"),
    )


async def _metadata(
    sap: SapClient, config: BridgeConfig, root: str, wanted: dict[str, frozenset[str]]
) -> Check:
    name = root.rsplit("/", 1)[-1]
    check = f"metadata_{name}"
    try:
        response = await sap.probe(config, f"{root}/$metadata", service="read")
        offered = _properties(response.content)
    except (SapError, ValueError) as exc:
        return Check(check, "fail", f"$metadata unreadable ({exc})", "see SAP's logs")
    missing = sorted(
        f"{entity}.{field}"
        for entity, fields in wanted.items()
        for field in fields - offered.get(entity, set())
    )
    if missing:
        return Check(
            check,
            "fail",
            "the tenant's service lacks properties the bridge reads: " + ", ".join(missing),
            "the tenant runs another version of the API: report it with these names",
        )
    return Check(check, "pass", f"every property the bridge reads is there ({name})")


async def _test_posting(sap: SapClient, config: BridgeConfig, today: date) -> Check:
    """A posting of 1 unit with `TestDataIndicator` on the bulk MessageHeader: SAP checks
    company code and accounts and keeps nothing (KBA 3291244). What SAP answers is shown."""
    entry = _test_entry(config, today)
    try:
        answer = await sap.post_journal_entry(config, entry, test_run=True)
    except SapRejectedError as error:
        said = "; ".join(m.note for m in error.messages) or error.detail
        if error.messages and max(m.severity for m in error.messages) < 3:
            return Check("test_posting", "pass", f"test run accepted, nothing posted: {said}")
        return Check(
            "test_posting",
            "fail",
            f"SAP refused the test posting: {said}",
            "check Company Code, AR Account / AR Customer and Revenue Account for this tenant",
        )
    except SapError as error:
        return Check("test_posting", "fail", f"no answer: {error.detail}", "try again later")
    said = "; ".join(m.note for m in answer.messages) or "no messages"
    document = answer.accounting_document.strip("0 ")
    if document:
        return Check(
            "test_posting",
            "fail",
            f"SAP posted document {answer.accounting_document} ({answer.company_code}, "
            f"{answer.fiscal_year}) although the request was a test run. SAP said: {said}",
            f"reverse document {answer.accounting_document} in SAP (Manage Journal Entries)",
        )
    return Check("test_posting", "pass", f"test run accepted, nothing posted. SAP said: {said}")


def _clock(seen: _Seen) -> Check:
    if seen.sap_date is None or seen.measured_at is None:
        return Check("clock", "warn", "SAP sent no Date header to compare with", "")
    offset = (seen.measured_at - seen.sap_date).total_seconds()
    detail = f"this machine is {abs(offset):.0f} s {'ahead of' if offset > 0 else 'behind'} SAP"
    if abs(offset) > CLOCK_FAIL_SECONDS:
        return Check(
            "clock",
            "fail",
            detail,
            "synchronise the clock (NTP): webhook signatures older than 5 minutes are refused",
        )
    if abs(offset) > CLOCK_WARN_SECONDS:
        return Check("clock", "warn", detail, "synchronise the clock (NTP)")
    return Check("clock", "pass", detail)


# --- helpers ---------------------------------------------------------------------------------


def _test_entry(config: BridgeConfig, today: date) -> JournalEntry:
    code = config.get("Currency") or "LKR"
    amount = Decimal(1)
    receivable_account, customer = config.require("AR Account"), config.get("AR Customer")
    return JournalEntry(
        company_code=config.require("Company Code"),
        document_date=today,
        posting_date=today,
        currency=code,
        currency_decimals=currency.minor_units(code),
        document_reference_id="PREFLIGHT",
        header_text="hmis-sap-bridge preflight (test run)",
        reference1=None,
        created_by="HMIS_COMM",
        document_type="DR",
        message_id=f"PREFLIGHT-{today:%Y%m%d}",
        items=(
            (GLItem(config.require("Revenue Account"), -amount),)
            if customer
            else (
                GLItem(receivable_account, amount),
                GLItem(config.require("Revenue Account"), -amount),
            )
        ),
        debtor_items=(DebtorItem(customer, amount),) if customer else (),
    )


def _properties(edmx: bytes) -> dict[str, set[str]]:
    try:
        root = fromstring(edmx)
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not XML: {exc}") from None
    found: dict[str, set[str]] = {}
    for node in root.iter():
        if node.tag.endswith("}EntityType") or node.tag == "EntityType":
            found[node.get("Name", "")] = {
                p.get("Name", "")
                for p in node
                if p.tag.endswith("}Property") or p.tag == "Property"
            }
    return found


def _trusted_cas() -> str:
    return os.environ.get("SSL_CERT_FILE") or certifi.where()
