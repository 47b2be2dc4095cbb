"""Benchmark: SAP down while HMIS pushes a backlog, then SAP back; how fast does it drain?

    .venv/bin/python bench/backlog.py [--bills 5000] [--replicas 1] [--db postgres]
    .venv/bin/python bench/backlog.py --bills 500 --outage 503

Phase 1: the simulator answers 503 to everything while 32 callers push `--bills` bills; each
push must be answered 202 `queued` quickly. Phase 2: the simulator comes back at 150 ms per
posting; the outbox workers of `--replicas` bridge processes drain the queue. Reports the push
latency, the drain rate against the SAP-side limit (Max Concurrent Calls / latency, whatever the
number of replicas: the cap holds across them), the most postings SAP saw at once,
from "SAP is back" (so including the circuit breaker's probe pause) and from the first to the
last posting SAP recorded, and duplicates in the simulator's ledger.

`--outage down` (the default) is that outage: SAP's web dispatcher answers its "Service
Unavailable" page to every call, the token endpoint included, so no posting is even sent.
`--outage 503` keeps the token endpoint working and answers every posting with the 503 page, so
pushes and the outbox really send bills into it. Both report the time from SAP's recovery to
the last bill posted against the SAP-side drain time (bills / limit): a bill that only ever saw
a 503 page must not wait out the settle time of an ambiguous answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    bridge_env,
    bridge_server,
    configure,
    database,
    free_port,
    group_commit,
    migrate,
    profiled,
    sim_settings,
    simulator,
    stolen_seconds,
    wait_http,
    warm_up,
)
from push import Result, push_all, summarize


async def pending(url: str, key: str) -> bool:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}) as client:
        response = await client.get("/bills", params={"status": "queued", "limit": 1})
        return bool(response.json()["items"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bills", type=int, default=5000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--py-spy", metavar="FILE", help="profile replica 0 while pushing")
    parser.add_argument("--push-only", action="store_true", help="stop before SAP comes back")
    parser.add_argument(
        "--outage",
        choices=["down", "503"],
        default="down",
        help="down: SAP's dispatcher answers 503 to every call, token included; 503: the "
        "token works and every posting is answered the dispatcher's 503 page",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    ports = [free_port() for _ in range(args.replicas)]
    with database(args.db, workdir) as db_url, contextlib.ExitStack() as stack:
        env = bridge_env(db_url)
        migrate(env)
        stack.enter_context(simulator(sim_port, workdir / "sim.log"))
        servers = []
        for n, port in enumerate(ports):
            servers.append(
                stack.enter_context(bridge_server(env, port, workdir / f"bridge-{n}.log"))
            )
        wait_http(sim_url + "/sim/stats")
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_http(url + "/health/live")
        configure(urls[0], env["BRIDGE_ADMIN_API_KEY"], sim_settings(sim_url, args.max_concurrent))
        time.sleep(2.5)  # replicas see the new settings within their 2 s cache
        key = env["BRIDGE_API_KEY"]
        for url in urls:
            asyncio.run(warm_up(url, key, max(1, args.callers // len(urls))))
        if args.outage == "down":
            outage: dict = {"down": True}
        else:  # every posting meets a 503 page, more than the pushes and retries can use up
            outage = {"queue": [{"kind": "status", "status": 503}] * (20 * args.bills)}
        httpx.put(sim_url + "/sim/faults", json=outage).raise_for_status()
        share = args.bills // len(urls)

        async def push_phase() -> list[Result]:
            parts = await asyncio.gather(
                *(
                    push_all(url, key, n * share, share, max(1, args.callers // len(urls)))
                    for n, url in enumerate(urls)
                )
            )
            return [result for part in parts for result in part]

        began, stolen = time.perf_counter(), stolen_seconds()
        with profiled(servers[0].pid, args.py_spy):
            pushed = summarize(asyncio.run(push_phase()), time.perf_counter() - began)
        pushed["cpu_stolen_s"] = round(stolen_seconds() - stolen, 1)
        pushed["group_commit"] = group_commit(urls[0], "bills")
        if args.push_only:
            print(json.dumps({"command": " ".join(sys.argv), "push_while_sap_down": pushed}))
            return
        httpx.put(
            sim_url + "/sim/faults",
            json={"down": False, "queue": [], "latency_ms": args.latency_ms},
        ).raise_for_status()
        began, stolen, recovered = time.perf_counter(), stolen_seconds(), datetime.now(UTC)
        while asyncio.run(pending(urls[0], key)):
            time.sleep(0.25)
        drain_s = time.perf_counter() - began
        drain_stolen_s = stolen_seconds() - stolen
        docs = httpx.get(sim_url + "/sim/ledger", timeout=60).json()["documents"]
        sap_stats = httpx.get(sim_url + "/sim/stats", timeout=60).json()
    refs = [d["reference_id"] for d in docs]
    limit = args.max_concurrent / (args.latency_ms / 1000)
    rate = len(set(refs)) / drain_s
    # the same without the circuit breaker's probe pause: first to last posting SAP recorded
    stamps = sorted(datetime.fromisoformat(d["created_at"]) for d in docs)
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]).total_seconds()
    last = stamps[-1] if stamps[-1].tzinfo else stamps[-1].replace(tzinfo=UTC)
    recovery_to_last = (last - recovered).total_seconds()
    sap_side_drain = len(set(refs)) / limit
    print(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "db": args.db,
                "replicas": args.replicas,
                "push_while_sap_down": pushed,
                "drain_s": round(drain_s, 2),
                "drain_cpu_stolen_s": round(drain_stolen_s, 1),
                "drain_rate_per_s": round(rate, 2),
                "sap_side_limit_per_s": round(limit, 2),
                "rate_vs_limit": round(rate / limit, 3),
                "first_to_last_posting_rate_per_s": round(steady, 2),
                "first_to_last_vs_limit": round(steady / limit, 3),
                "outage": args.outage,
                "recovery_to_last_posted_s": round(recovery_to_last, 2),
                "sap_side_drain_s": round(sap_side_drain, 2),
                "recovery_vs_sap_side_drain": round(recovery_to_last / sap_side_drain, 3),
                "most_postings_at_once": sap_stats["soap_max_in_flight"],
                "documents": len(refs),
                "missing": share * len(urls) - len(set(refs)),
                "duplicates": len(refs) - len(set(refs)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
