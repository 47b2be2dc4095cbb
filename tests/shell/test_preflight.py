"""The go-live preflight against the simulator: healthy, and each step failing as a real
tenant's first contact does. Through `preflight.run`, the CLI's exit code and `--json`, and
`GET /health/sap`."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from typer.testing import CliRunner

from app.config.keys import PREFIX
from app.config.service import BridgeConfig
from app.sap.client import SapClient
from app.shell import preflight
from app.shell.cli import app
from tests.billing.test_preview_cli import use
from tests.support.bridge import ADMIN_KEY
from tests.support.certs import CertificateAuthority

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def config(sim: httpx.Client, **changes: str | None) -> BridgeConfig:
    values: dict[str, str | None] = {
        "Enabled": "true",
        "Base URL": str(sim.base_url).rstrip("/"),
        "Client ID": "sim-client",
        "Client Secret": "sim-secret",
        "Company Code": "1000",
        "AR Account": "12100000",
        "Revenue Account": "41000000",
        "Currency": "LKR",
        "Timeout Seconds": "5",
        "Max Concurrent Calls": "2",
        "Webhook Secret": WEBHOOK_SECRET,
    } | changes
    return BridgeConfig({PREFIX + k: v for k, v in values.items() if v is not None})


async def run(settings: BridgeConfig) -> dict[str, preflight.Check]:
    sap = SapClient()
    try:
        return {c.check: c for c in await preflight.run(sap, settings)}
    finally:
        await sap.aclose()


def faults(sim: httpx.Client, **values: object) -> None:
    sim.put("/sim/faults", json=values).raise_for_status()


async def test_a_healthy_tenant_passes_every_step_and_keeps_nothing(sim: httpx.Client) -> None:
    checks = await run(config(sim))
    assert list(checks) == [
        "settings",
        "webhook_credentials",
        "dns_tls",
        "authentication",
        "posting_service",
        "journal_entry_service",
        "material_document_service",
        "metadata_API_OPLACCTGDOCITEMCUBE_SRV",
        "metadata_API_MATERIAL_DOCUMENT_SRV",
        "test_posting",
        "clock",
    ]
    statuses = {name: c.status for name, c in checks.items()}
    assert statuses.pop("dns_tls") == "warn"  # the simulator speaks plain http
    assert set(statuses.values()) == {"pass"}, checks
    assert "Test run" in checks["test_posting"].detail  # what SAP said, as it said it
    assert sim.get("/sim/ledger").json()["documents"] == []  # the test run kept nothing
    assert preflight.exit_code(list(checks.values())) == 0


@pytest.mark.parametrize(
    ("fault", "check", "words"),
    [
        ({"kind": "status", "status": 401, "target": "soap"}, "posting_service", "SAP_COM_0002"),
        ({"kind": "status", "status": 403, "target": "soap"}, "posting_service", "not assigned"),
        ({"kind": "status", "status": 404, "target": "odata"}, "journal_entry_service", "0303"),
    ],
)
async def test_a_service_that_refuses_names_its_arrangement(
    sim: httpx.Client, fault: dict, check: str, words: str
) -> None:
    faults(sim, queue=[fault])
    checks = await run(config(sim))
    assert checks[check].status == "fail" and words in checks[check].remedy
    if check == "journal_entry_service":
        assert "metadata_API_OPLACCTGDOCITEMCUBE_SRV" not in checks  # nothing to compare
    else:
        assert "test_posting" not in checks


async def test_a_wrong_secret_fails_authentication(sim: httpx.Client) -> None:
    checks = await run(config(sim, **{"Client Secret": "wrong"}))
    assert checks["authentication"].status == "fail"
    assert "Client ID / Client Secret" in checks["authentication"].remedy


async def test_an_oauth_posting_on_a_tenant_that_follows_its_wsdl(sim: httpx.Client) -> None:
    faults(sim, soap_basic_only=True)
    checks = await run(config(sim, **{"Auth Method": "oauth"}))
    assert checks["posting_service"].status == "fail"
    assert "set Posting Auth Method" in checks["posting_service"].remedy
    assert (await run(config(sim)))["posting_service"].status == "pass"  # the default: Basic


async def test_a_property_missing_from_metadata_is_named(sim: httpx.Client) -> None:
    faults(sim, metadata_missing=["DocumentReferenceID", "GoodsMovementType"])
    checks = await run(config(sim))
    cube = checks["metadata_API_OPLACCTGDOCITEMCUBE_SRV"]
    assert cube.status == "fail"
    assert "A_OperationalAcctgDocItemCubeType.DocumentReferenceID" in cube.detail
    assert "GoodsMovementType" in checks["metadata_API_MATERIAL_DOCUMENT_SRV"].detail


async def test_a_test_posting_that_got_a_document_says_which_to_reverse(
    sim: httpx.Client,
) -> None:
    faults(sim, test_run_posts=True)
    checks = await run(config(sim))
    [document] = sim.get("/sim/ledger").json()["documents"]
    assert checks["test_posting"].status == "fail"
    assert f"reverse document {document['number']}" in checks["test_posting"].remedy


async def test_a_clock_off_by_more_than_the_webhook_tolerance_fails(sim: httpx.Client) -> None:
    faults(sim, clock_offset_s=-400)
    clock = (await run(config(sim)))["clock"]
    assert clock.status == "fail" and "ahead of SAP" in clock.detail
    faults(sim, clock_offset_s=90)
    assert (await run(config(sim)))["clock"].status == "warn"


async def test_no_webhook_credentials_and_a_certificate_near_expiry(sim: httpx.Client) -> None:
    soon = CertificateAuthority().issue("HMIS_COMM", valid_for=timedelta(days=10))
    settings = config(
        sim,
        **{
            "Webhook Secret": None,
            "Read Auth Method": "certificate",
            "Client Certificate": soon.certificate,
            "Client Certificate Key": soon.key,
        },
    )
    checks = await run(settings)
    assert checks["webhook_credentials"].status == "fail"
    assert checks["authentication"].status == "warn"
    assert "expires on" in checks["authentication"].detail


async def test_a_disabled_integration_checks_the_settings_only(sim: httpx.Client) -> None:
    checks = await run(config(sim, Enabled="false"))
    assert list(checks) == ["settings", "webhook_credentials", "integration"]
    assert checks["integration"].status == "warn"
    assert sim.get("/sim/stats").json()["soap_posts"] == 0
    unset = await run(config(sim, Enabled="false", **{"Base URL": None}))
    assert unset["settings"].status == "warn" and "Base URL" in unset["settings"].detail
    assert preflight.exit_code(list(unset.values())) == 0


async def test_the_route_answers_the_same_for_the_admin_key_only(bridge) -> None:
    async with bridge.client() as hmis:
        assert (await hmis.get("/health/sap")).status_code in (401, 403)
    async with bridge.admin() as admin:
        answer = await admin.get("/health/sap")
    assert answer.status_code == 200
    names = [c["check"] for c in answer.json()]
    assert names[0] == "settings" and "test_posting" in names


def test_the_cli_exits_1_on_a_failure_and_prints_json(
    bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(bridge.settings, monkeypatch)
    runner = CliRunner()
    ok = runner.invoke(app, ["sap-check", "--json"])
    checks = json.loads(ok.stdout)
    assert {c["check"]: c["status"] for c in checks}["test_posting"] == "pass", ok.output
    assert set(checks[0]) == {"check", "status", "detail", "remedy"}
    assert ok.exit_code == (1 if any(c["status"] == "fail" for c in checks) else 0)
    faults(sim, queue=[{"kind": "status", "status": 403, "target": "soap"}])
    failed = runner.invoke(app, ["sap-check"], env={"COLUMNS": "160"})
    assert (failed.exit_code == 1 and failed.exception is None) or isinstance(
        failed.exception, SystemExit
    )
    assert "SAP go-live preflight" in failed.stdout and "not assigned" in failed.stdout
    assert ADMIN_KEY not in failed.stdout


class DatedSap:
    """Answers every probe 200 with the given Date header."""

    def __init__(self, date: str) -> None:
        self.date = date

    async def probe(self, *_: object, **__: object) -> httpx.Response:
        return httpx.Response(200, headers={"date": self.date})


@pytest.mark.parametrize("date", ["garbage", "", "Wed, 02 Dec 2026 16:00:00 -0000"])
async def test_a_date_header_that_does_not_parse_is_no_crash(sim: httpx.Client, date: str) -> None:
    seen = preflight._Seen()
    check = await preflight._service(DatedSap(date), config(sim), "posting_service", seen)  # type: ignore[arg-type]
    assert check.status == "pass"
    assert preflight._clock(seen).status in ("pass", "warn", "fail")
