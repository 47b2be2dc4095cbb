"""`bridge demo`: the SAP simulator, the service and sample bills, end to end on SQLite."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import socket
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from app.config.crypto import SecretBox
from app.platform import logging as applog
from app.platform.local_server import serve
from app.platform.settings import Settings
from app.shell.main import create_app
from app.shell.migrate import upgrade

SAMPLE_RULES = [
    {"department": "LAB", "gl_account": "41000100", "profit_center": "PC100"},
    {"department": "OPD", "gl_account": "41000200", "profit_center": "PC200"},
    {"department": "PHARM", "gl_account": "41000300", "profit_center": "PC300"},
]


def _bill(
    reference: str, lines: list[tuple[str, str, str]], payer: str | None = None
) -> dict[str, Any]:
    net = sum((Decimal(v) for _, v, _ in lines), Decimal(0))
    return {
        "reference": reference,
        "bill_date": time.strftime("%Y-%m-%d"),
        "currency": "LKR",
        "net_total": f"{net:.2f}",
        "items": [
            {"line_id": str(i + 1), "description": d, "net_value": v, "department": dep}
            for i, (d, v, dep) in enumerate(lines)
        ],
        "payer": {"name": "Demo patient", "customer": payer},
    }


SAMPLE_BILLS = {
    "OPD-0001": _bill(
        "HMIS-DEMO-0001",
        [("Consultation", "5000.00", "OPD"), ("Full blood count", "10000.00", "LAB")],
    ),
    "PH-0002": _bill(
        "HMIS-DEMO-0002",
        [
            ("Paracetamol 500 mg x 20", "640.00", "PHARM"),
            ("Amoxicillin 250 mg x 15", "1275.50", "PHARM"),
            ("Dressing", "300.00", "WARD"),
        ],
    ),
    "IP-0003": _bill(
        "HMIS-INPATIENT-2024-000003",
        [("Room", "45000.00", "WARD"), ("Lab panel", "12500.00", "LAB")],
        payer="10000001",
    ),
}


class PortTaken(Exception):
    """The port asked for is in use: the demo says so in one line instead of failing later."""


def run_demo(database: str, *, keep_serving: bool, console: Console, port: int = 0) -> int:
    """Run the whole flow; returns the process exit code. `port` is the bridge's (0: any)."""
    if port:
        _check_free(port)
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{Path(database).resolve()}",
        BRIDGE_API_KEY=secrets.token_urlsafe(24),
        BRIDGE_ADMIN_API_KEY=secrets.token_urlsafe(24),
        BRIDGE_ENCRYPTION_KEY=SecretBox.generate_key(),
        BRIDGE_LOG_FORMAT="console",
        BRIDGE_ALLOW_INSECURE_SAP_URLS=True,
    )
    asyncio.run(upgrade(settings.database_url))
    console.print(f"[bold]1.[/bold] migrated SQLite database {database}")
    from sapsim.app import create_sim_app

    sim = serve(create_sim_app(), date_header=False)
    with sim as sim_url, serve(create_app(settings), port=port) as bridge_url:
        # the walk-through's tables are the output: the bridge's own events only from warnings
        applog.configure(settings.log_format, level=logging.WARNING)
        console.print(f"[bold]2.[/bold] SAP simulator on {sim_url}, bridge on {bridge_url}")
        ok = asyncio.run(_walk_through(settings, sim_url, bridge_url, console))
        if keep_serving:
            _print_how_to_use(settings, bridge_url, console)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0 if ok else 1


def _check_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortTaken(f"port {port} is in use: choose another with --port") from None


def _print_how_to_use(settings: Settings, bridge_url: str, console: Console) -> None:
    """What a person needs to go on by hand: the URLs, the keys, and the CLI's environment."""
    api, admin = settings.api_key.get_secret_value(), settings.admin_api_key.get_secret_value()
    encryption = settings.encryption_key.get_secret_value()
    console.print(
        f"\nthe bridge runs on {bridge_url}: the operator console is {bridge_url}/console "
        f"(sign in with the admin key), the API docs {bridge_url}/docs; Ctrl-C stops it."
        f"\nHMIS key (X-API-Key): {api}\nadmin key (X-API-Key): {admin}"
        "\nto use the `bridge` CLI against this database, in another shell:\n",
        highlight=False,
        soft_wrap=True,
    )
    # print(), not rich: the lines must stay copyable, unwrapped and without markup
    print(
        f"export DATABASE_URL='{settings.database_url}'\n"
        f"export BRIDGE_API_KEY='{api}' BRIDGE_ADMIN_API_KEY='{admin}'\n"
        f"export BRIDGE_ENCRYPTION_KEY='{encryption}' BRIDGE_ALLOW_INSECURE_SAP_URLS=true\n"
        "bridge config get; bridge sap-check",
        flush=True,
    )


async def _walk_through(
    settings: Settings, sim_url: str, bridge_url: str, console: Console
) -> bool:
    admin = {"X-API-Key": settings.admin_api_key.get_secret_value()}
    hmis = {"X-API-Key": settings.api_key.get_secret_value()}
    async with httpx.AsyncClient(base_url=bridge_url, timeout=60) as client:
        await _configure(client, admin, sim_url)
        console.print("[bold]3.[/bold] configured the bridge through PUT /config (admin key)")
        table = Table("bill", "HTTP", "status", "SAP document", "fiscal year", "detail")
        ok = True
        for bill_id, body in SAMPLE_BILLS.items():
            response = await client.post(f"/bills/{bill_id}/push", json=body, headers=hmis)
            ok &= response.status_code == 201
            table.add_row(bill_id, *_row(response))
        again = await client.post(
            "/bills/OPD-0001/push", json=SAMPLE_BILLS["OPD-0001"], headers=hmis
        )
        ok &= again.status_code == 200
        table.add_row("OPD-0001 (again)", *_row(again))
        bad = dict(SAMPLE_BILLS["PH-0002"], net_total="1.00")
        invalid = await client.post("/bills/PH-0009/push", json=bad, headers=hmis)
        ok &= invalid.status_code == 422
        table.add_row("PH-0009 (invalid)", *_row(invalid))
        console.print("[bold]4.[/bold] pushed sample bills through POST /bills/{id}/push")
        console.print(table)
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        documents = (await sim.get("/sim/ledger")).json()["documents"]
    console.print(_ledger_table(documents))
    ok &= await _payment_step(settings, sim_url, bridge_url, console)
    console.print(
        "[green]demo finished[/green]" if ok else "[red]demo saw unexpected answers[/red]"
    )
    return ok


async def _payment_step(
    settings: Settings, sim_url: str, bridge_url: str, console: Console
) -> bool:
    """SAP clears OPD-0001 in two payments; a signed webhook and the clearing sync report them."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    admin = {"X-API-Key": settings.admin_api_key.get_secret_value()}
    hmis = {"X-API-Key": settings.api_key.get_secret_value()}
    async with (
        httpx.AsyncClient(base_url=bridge_url, timeout=60) as client,
        httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
    ):
        key = "/config/SAP Integration - Webhook Secret"
        (await client.put(key, json={"value": secret}, headers=admin)).raise_for_status()
        bill = (await client.get("/bills/OPD-0001", headers=hmis)).json()
        invoice = {
            "company_code": bill["company_code"],
            "fiscal_year": bill["fiscal_year"],
            "accounting_document": bill["sap_document_number"],
        }
        target = {"url": bridge_url + "/webhooks/sap/payment", "kind": "payment_webhook"}
        await sim.put("/sim/events/subscriptions/iflow", json={**target, "secret": secret})
        first = (await sim.post("/sim/events/clear", json={**invoice, "amount": "5000.00"})).json()
        await sim.delete("/sim/events/subscriptions/iflow")
        second = (await sim.post("/sim/clear", json=invoice)).json()  # no one announces this
        synced = (await client.post("/payments/clearing-sync", headers=admin)).json()
        final = (await client.get("/bills/OPD-0001", headers=hmis)).json()
    answer = first["deliveries"][0]
    console.print(
        f"[bold]6.[/bold] SAP payment {first['payment_document']} (5000.00): signed webhook "
        f"answered {answer['status_code']}; payment {second['payment_document']} "
        f"({second['amount']}) found by the clearing sync ({synced['payments_recorded']} new)"
    )
    console.print(
        f"   OPD-0001 paid {final['paid_amount']} {final['currency']}, "
        f"outstanding {final['outstanding_amount']}"
    )
    return answer["status_code"] == 200 and final["outstanding_amount"] == "0.00"


async def _configure(client: httpx.AsyncClient, admin: dict[str, str], sim_url: str) -> None:
    values = {
        "Base URL": sim_url,
        "Client ID": "sim-client",
        "Client Secret": "sim-secret",
        "Company Code": "1000",
        "AR Account": "12100000",
        "Revenue Account": "41000000",
        "Currency": "LKR",
        "Enabled": "true",
    }
    for key, value in values.items():
        response = await client.put(
            f"/config/SAP Integration - {key}", json={"value": value}, headers=admin
        )
        response.raise_for_status()
    (await client.put("/config/revenue-rules", json=SAMPLE_RULES, headers=admin)).raise_for_status()


def _row(response: httpx.Response) -> list[str]:
    body = response.json()
    return [
        str(response.status_code),
        body.get("status", ""),
        body.get("sap_document_number", ""),
        body.get("fiscal_year", ""),
        (body.get("detail") or "")[:60],
    ]


def _ledger_table(documents: list[dict[str, Any]]) -> Table:
    table = Table(
        "SAP document",
        "identity (DocumentReferenceID)",
        "HMIS reference",
        "account / customer",
        "profit ctr",
        "amount",
        "D/C",
        title="5. What SAP posted (simulator ledger)",
    )
    for doc in documents:
        for line in doc["lines"]:
            table.add_row(
                doc["number"],
                doc["reference_id"],
                doc.get("reference1", ""),
                line.get("customer") or line.get("gl_account", ""),
                line.get("profit_center") or "",
                line["amount"],
                line.get("debit_credit", ""),
            )
    return table
