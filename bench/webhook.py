"""Benchmark: signed payment webhooks from concurrent senders, against a bare insert endpoint.

    .venv/bin/python bench/webhook.py [--events 10000] [--senders 32] [--processes 4]

Two servers run one after the other, each as one uvicorn process on its own fresh PostgreSQL
database built by the migrations:

* **bare**: a FastAPI endpoint that only inserts the same `payment_events` row (same unique
  keys, `ON CONFLICT DO NOTHING`, commit) and answers 200 — no signature, no parsing, no bill;
* **bridge**: `bridge serve`, the real `POST /webhooks/sap/payment`: Standard Webhooks check
  against the raw body, JSON and schema validation, inbox insert, bill lookup with a row lock,
  payment insert, commit, answer `confirmed`.

Each event is a payment object for one of 1,000 posted bills, signed with `standardwebhooks`.
The load comes from `--processes` processes with `--senders / --processes` keep-alive senders
each, started together; every response is counted by status. Afterwards the bridge's database
must hold exactly one payment per event.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (
    BIN,
    bridge_env,
    bridge_server,
    configure,
    cpu_seconds,
    database,
    free_port,
    group_commit,
    median,
    migrate,
    percentile,
    process,
    profiled,
    raw_request,
    read_response,
    stolen_seconds,
    wait_http,
)

BILLS = 1000
SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789!").decode()


# --- the bare endpoint ----------------------------------------------------------------------


def bare_app() -> FastAPI:
    """`uvicorn --factory webhook:bare_app`: insert the inbox row and answer, nothing else."""
    from sqlalchemy.dialects.postgresql import insert

    from app.payments.models import PaymentEvent
    from app.platform.db import make_engine, make_session_factory, utcnow

    app = FastAPI()
    engine = make_engine(os.environ["DATABASE_URL"])
    sessions = make_session_factory(engine)

    @app.post("/webhooks/sap/payment")
    async def inbox(request: Request) -> JSONResponse:
        body = await request.body()
        values = {
            "kind": "payment",
            "status": "done",
            "webhook_id": request.headers.get("webhook-id"),
            "payment_key": f"1000/{request.headers.get('webhook-id')}",
            "authenticated_by": "signature",
            "body": body.decode(),
            "attempts": 0,
            "received_at": utcnow(),
        }
        statement = insert(PaymentEvent).values(**values).on_conflict_do_nothing()
        async with sessions() as session, session.begin():
            await session.execute(statement.returning(PaymentEvent.id))
        return JSONResponse({"status": "ok"})

    return app


# --- load -----------------------------------------------------------------------------------


def _events(first: int, count: int) -> list[tuple[bytes, dict[str, str]]]:
    from standardwebhooks.webhooks import Webhook

    signer = Webhook(SECRET)
    signed = []
    for n in range(first, first + count):
        body = json.dumps(
            {
                "sapDocumentNumber": f"{100000001 + n % BILLS:010d}",
                "paymentDocument": f"{1400000001 + n:010d}",
                "hmsBillReference": f"BENCH-{n % BILLS:06d}",
                "amount": "1.00",
                "currency": "LKR",
                "postingDate": "2024-03-20",
            }
        ).encode()
        webhook_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(webhook_id, now, body.decode()),
        }
        signed.append((body, headers))
    return signed


async def _send(url: str, events: list, senders: int, start_at: float) -> dict[str, Any]:
    """`senders` keep-alive HTTP/1.1 connections; requests are pre-built bytes, so the load
    generator spends its CPU on the wire, not on an HTTP library."""
    host, port = url.removeprefix("http://").split(":")
    queue = [
        raw_request(host, "POST", "/webhooks/sap/payment", body, headers)
        for body, headers in reversed(events)
    ]
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while queue:
            request = queue.pop()
            began = time.perf_counter()
            writer.write(request)
            status, _ = await read_response(reader)
            latencies.append(time.perf_counter() - began)
            codes[status] = codes.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(sender() for _ in range(senders)))
    return {"latencies": latencies, "codes": codes, "end": time.time()}


def _worker(args: tuple[str, int, int, int, float]) -> dict[str, Any]:
    url, first, count, senders, start_at = args
    return asyncio.run(_send(url, _events(first, count), senders, start_at))


def load(url: str, events: int, senders: int, processes: int) -> dict[str, Any]:
    """Send `events` signed webhooks; throughput from the common start to the last answer."""
    share, per = events // processes, senders // processes
    start_at = time.time() + 3 + events / 20000  # time for every process to sign its share
    jobs = [(url, i * share, share, per, start_at) for i in range(processes)]
    if processes == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.map(_worker, jobs)
    latencies = [v for r in results for v in r["latencies"]]
    codes: dict[int, int] = {}
    for r in results:
        for code, n in r["codes"].items():
            codes[code] = codes.get(code, 0) + n
    wall = max(r["end"] for r in results) - start_at
    return {
        "requests": len(latencies),
        "status_codes": codes,
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(latencies) / wall, 1),
        "latency_p50_ms": round(median(latencies) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
    }


# --- setup ----------------------------------------------------------------------------------


async def _seed_bills(url: str) -> None:
    from sqlalchemy import insert

    from app.billing.models import Bill
    from app.platform.db import make_engine, utcnow

    engine = make_engine(url)
    now = utcnow()
    rows = [
        {
            "bill_id": f"BENCH-{n:06d}",
            "reference": f"BENCH-{n:06d}",
            "bill_date": date(2024, 3, 15),
            "currency": "LKR",
            "net_total": Decimal("15000.00"),
            "fingerprint": "bench",
            "payload": {},
            "status": "posted",
            "company_code": "1000",
            "document_reference_id": f"BENCH-{n:06d}",
            "sap_document_number": f"{100000001 + n:010d}",
            "fiscal_year": "2024",
            "attempts": 1,
            "maybe_posted": False,
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
            "posted_at": now,
        }
        for n in range(BILLS)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Bill), rows)
    await engine.dispose()


async def _count(url: str) -> dict[str, int]:
    from sqlalchemy import text

    from app.platform.db import make_engine

    engine = make_engine(url)
    async with engine.connect() as conn:
        events = await conn.scalar(text("SELECT count(*) FROM payment_events"))
        payments = await conn.scalar(
            text("SELECT count(*) FROM payments WHERE status = 'confirmed'")
        )
        distinct = await conn.scalar(
            text("SELECT count(DISTINCT (company_code, payment_document)) FROM payments")
        )
    await engine.dispose()
    return {
        "events": int(events or 0),
        "payments": int(payments or 0),
        "distinct": int(distinct or 0),
    }


def _per_event(pid: int, cpu_before: float, events: int) -> float:
    return round((cpu_seconds(pid) - cpu_before) * 1000 / events, 3)


def run_bare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    with database("postgresql", workdir) as url:
        env = bridge_env(url)
        migrate(env)
        command = [
            str(BIN / "uvicorn"),
            "--factory",
            "--app-dir",
            str(Path(__file__).parent),
            "webhook:bare_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        with process(command, env, workdir / "bare.log") as server:
            wait_http(f"http://127.0.0.1:{port}/openapi.json")
            cpu, stolen = cpu_seconds(server.pid), stolen_seconds()
            result = load(f"http://127.0.0.1:{port}", args.events, args.senders, args.processes)
            result["server_cpu_ms_per_event"] = _per_event(server.pid, cpu, args.events)
            result["cpu_stolen_s"] = round(stolen_seconds() - stolen, 1)
            result["rows"] = asyncio.run(_count(url))["events"]
    return result


def run_bridge(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    url_base = f"http://127.0.0.1:{port}"
    with database("postgresql", workdir) as url:
        env = bridge_env(url)
        migrate(env)
        asyncio.run(_seed_bills(url))
        with bridge_server(env, port, workdir / "bridge.log") as server:
            wait_http(url_base + "/health/live")
            configure(
                url_base,
                env["BRIDGE_ADMIN_API_KEY"],
                {"Company Code": "1000", "Webhook Secret": SECRET},
            )
            cpu, stolen = cpu_seconds(server.pid), stolen_seconds()
            with profiled(server.pid, args.py_spy):
                result = load(url_base, args.events, args.senders, args.processes)
            result["server_cpu_ms_per_event"] = _per_event(server.pid, cpu, args.events)
            result["cpu_stolen_s"] = round(stolen_seconds() - stolen, 1)
            result["group_commit"] = group_commit(url_base, "payments")
            result["database"] = asyncio.run(_count(url))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--py-spy", metavar="FILE", help="profile the bridge (needs py-spy)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs; best of each")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    bares, bridges = [], []
    for _ in range(args.rounds):  # alternate, so both see the same machine
        bares.append(run_bare(args, workdir))
        bridges.append(run_bridge(args, workdir))
    bare = max(bares, key=lambda r: r["throughput_per_s"])
    bridge = max(bridges, key=lambda r: r["throughput_per_s"])
    ratio = bridge["throughput_per_s"] / bare["throughput_per_s"]
    report = {
        "command": " ".join(sys.argv),
        "events": args.events,
        "senders": args.senders,
        "cpus": os.cpu_count(),
        "rounds_throughput_per_s": {
            "bare": [r["throughput_per_s"] for r in bares],
            "bridge": [r["throughput_per_s"] for r in bridges],
        },
        "rounds_p99_ms": {
            "bare": [r["latency_p99_ms"] for r in bares],
            "bridge": [r["latency_p99_ms"] for r in bridges],
        },
        "bare_insert_endpoint": bare,
        "bridge_webhook": bridge,
        "bridge_vs_bare": round(ratio, 3),
        "server_cpu_ms_per_event": {
            "bare": [r["server_cpu_ms_per_event"] for r in bares],
            "bridge": [r["server_cpu_ms_per_event"] for r in bridges],
        },
        "cpu_stolen_s": {
            "bare": [r["cpu_stolen_s"] for r in bares],
            "bridge": [r["cpu_stolen_s"] for r in bridges],
        },
        "targets": {
            "throughput_per_s>=1000": bridge["throughput_per_s"] >= 1000,
            "p99_ms<50": bridge["latency_p99_ms"] < 50,
            "bridge_vs_bare>=0.6": ratio >= 0.6,
            "every_payment_once": all(
                r["database"]["payments"] == args.events == r["database"]["distinct"]
                for r in bridges
            ),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
