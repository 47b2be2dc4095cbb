"""Benchmark: the outbox claim's cost against the size of the queue, on PostgreSQL.

    .venv/bin/python bench/claim.py [--queued 5000 50000] [--rounds 50]

`PYTHONPATH=<worktree>` measures another commit's claim (and migrations) with the same script.

Fills a migrated throwaway database with queued bills (400-byte payloads), runs `ANALYZE`,
then times `repository.claim_due` for 8 bills `--rounds` times (each claim leases 8 more, as a
draining outbox does) and prints the median and the plan PostgreSQL chose.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    bridge_env,
    database,
    migrate,
)

from app.billing import repository
from app.billing.models import QUEUED, Bill
from app.platform.db import make_engine, statement, utcnow


def bills(count: int) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "bill_id": f"B-{n}",
            "reference": f"R-{n}",
            "bill_date": now.date(),
            "currency": "LKR",
            "net_total": 1,
            "fingerprint": "f",
            "payload": {"padding": "x" * 400},
            "status": QUEUED,
            "company_code": "1000",
            "document_reference_id": f"R-{n}",
            "attempts": 0,
            "maybe_posted": False,
            "cancel_requested": False,
            "created_at": now + timedelta(microseconds=n),
            "updated_at": now,
        }
        for n in range(count)
    ]


def plan() -> str:
    """EXPLAIN of the claim, its statement compiled with the values inlined."""
    now = utcnow()
    claim = repository.claim_statement(now, now, 8, "bench")
    compiled = claim.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return f"EXPLAIN {compiled}"


async def measure(url: str, queued: int, rounds: int) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            rows = bills(queued)
            for start in range(0, queued, 5000):
                await conn.execute(insert(Bill), rows[start : start + 5000])
            await conn.execute(text("ANALYZE bills"))
        times = []
        for _ in range(rounds):
            began, now = time.perf_counter(), utcnow()
            async with statement(engine) as session:
                await repository.claim_due(session, now, now + timedelta(minutes=5), 8, "bench")
            times.append(time.perf_counter() - began)
        async with engine.connect() as conn:
            chosen = [row[0] for row in await conn.execute(text(plan()))]
        scan = next((line.strip() for line in chosen if " on bills bills_1" in line), "")
        return {
            "queued": queued,
            "claim_median_ms": round(median(times) * 1000, 2),
            "pick": scan.split("  (")[0],
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    results = []
    for queued in args.queued:
        with database("postgres", Path(tempfile.mkdtemp(prefix="bench-claim-"))) as url:
            migrate(bridge_env(url))
            results.append(asyncio.run(measure(url, queued, args.rounds)))
    print(json.dumps({"command": " ".join(sys.argv), "claims": results}, indent=2))


if __name__ == "__main__":
    main()
