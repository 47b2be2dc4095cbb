"""Benchmark: how many postings per second the simulator itself gives a client with no outbox.

    .venv/bin/python bench/sim_ceiling.py [--postings 500] [--latency-ms 150] [--max-concurrent 4]

`backlog.py` judges the drain against Max Concurrent Calls / latency (4 / 150 ms = 26.7/s),
which leaves out the simulator's own work per posting (HTTP, parsing the SOAP request, the
ledger, the confirmation). This measures that ceiling: the bridge's `SapClient` alone, with no
database, lease or outbox, keeps `--max-concurrent` postings in flight against the simulator at
`--latency-ms`, and reports the rate against the same nominal limit. A drain at this ratio is as
fast as anything could drain this simulator on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, sim_settings, simulator, stolen_seconds, wait_http

from app.config.keys import PREFIX
from app.config.service import BridgeConfig
from app.sap.client import SapClient
from app.sap.journal_entry import GLItem, JournalEntry


def entry(n: int) -> JournalEntry:
    return JournalEntry(
        company_code="1000",
        document_date=date(2026, 3, 14),
        posting_date=date(2026, 3, 15),
        currency="LKR",
        currency_decimals=2,
        document_reference_id=f"CEIL{n:012d}",
        header_text=f"HMIS bill CEIL-{n}",
        reference1=f"CEIL-{n}",
        created_by="HMIS_COMM",
        document_type="DR",
        message_id=f"CEIL{n:012d}-1",
        items=(GLItem("12100000", Decimal("15000.00")), GLItem("41000000", Decimal("-15000.00"))),
        debtor_items=(),
    )


async def drive(config: BridgeConfig, postings: int, concurrent: int) -> float:
    sap = SapClient()
    todo = iter(range(postings + concurrent))
    try:
        for _ in range(concurrent):  # token and connections, outside the timing
            await sap.post_journal_entry(config, entry(next(todo)))

        async def worker() -> None:
            for n in todo:
                if n >= postings + concurrent:
                    return
                await sap.post_journal_entry(config, entry(n))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrent)))
        return time.perf_counter() - began
    finally:
        await sap.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postings", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--max-concurrent", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with simulator(port, Path(tempfile.mkdtemp(prefix="bench-ceiling-")) / "sim.log"):
        wait_http(url + "/sim/stats")
        httpx.put(url + "/sim/faults", json={"latency_ms": args.latency_ms}).raise_for_status()
        values = sim_settings(url, args.max_concurrent) | {"Timeout Seconds": "30"}
        config = BridgeConfig({PREFIX + k: v for k, v in values.items()})
        stolen = stolen_seconds()
        spent = asyncio.run(drive(config, args.postings, args.max_concurrent))
        limit = args.max_concurrent / (args.latency_ms / 1000)
        stats = httpx.get(url + "/sim/stats").json()
    rate = args.postings / spent
    print(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "postings": args.postings,
                "seconds": round(spent, 2),
                "rate_per_s": round(rate, 2),
                "nominal_limit_per_s": round(limit, 2),
                "rate_vs_limit": round(rate / limit, 3),
                "most_postings_at_once": stats.get("soap_max_in_flight"),
                "cpu_stolen_s": round(stolen_seconds() - stolen, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
