"""Benchmark: how soon are a SIGKILLed replica's in-flight bills taken over and posted?

    .venv/bin/python bench/takeover.py [--bills 8] [--latency-ms 2000]

Two replicas on PostgreSQL with default settings (lease, settle time, Timeout Seconds). SAP
answers each posting after `--latency-ms`; `--bills` pushes go to replica 0, and replica 0 is
SIGKILLed while they are with SAP (or waiting for one of its call slots). Replica 1's outbox
takes the bills over once their leases run out, reads SAP back and records what SAP posted;
bills SAP never got are sent once the settle time after their last possible send has passed.
Reports the seconds from the kill to each bill's posting, and duplicates in SAP's ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    bridge_env,
    bridge_server,
    configure,
    database,
    free_port,
    migrate,
    sim_settings,
    simulator,
    wait_http,
)
from push import bill


async def fire(url: str, key: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        tasks = [
            asyncio.create_task(client.post(f"/bills/TK-{n}/push", json=bill(n)))
            for n in range(count)
        ]
        await asyncio.sleep(0.8)  # every push has reached SAP or is waiting for a slot
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bills", type=int, default=8)
    parser.add_argument("--latency-ms", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    sim_port, ports = free_port(), [free_port(), free_port()]
    sim_url = f"http://127.0.0.1:{sim_port}"
    with database("postgres", workdir) as db_url, contextlib.ExitStack() as stack:
        env = bridge_env(db_url)
        migrate(env)
        stack.enter_context(simulator(sim_port, workdir / "sim.log"))
        servers = [
            stack.enter_context(bridge_server(env, port, workdir / f"bridge-{n}.log"))
            for n, port in enumerate(ports)
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        wait_http(sim_url + "/sim/stats")
        for url in urls:
            wait_http(url + "/health/live")
        configure(urls[0], env["BRIDGE_ADMIN_API_KEY"], sim_settings(sim_url))
        time.sleep(2.5)
        httpx.put(sim_url + "/sim/faults", json={"latency_ms": args.latency_ms}).raise_for_status()
        key = env["BRIDGE_API_KEY"]
        asyncio.run(fire(urls[0], key, args.bills))
        servers[0].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        httpx.put(sim_url + "/sim/faults", json={"latency_ms": 0}).raise_for_status()
        posted: dict[str, float] = {}
        with httpx.Client(base_url=urls[1], headers={"X-API-Key": key}, timeout=10) as client:
            while len(posted) < args.bills and time.perf_counter() - killed < 600:
                for n in range(args.bills):
                    bill_id = f"TK-{n}"
                    if bill_id in posted:
                        continue
                    view = client.get(f"/bills/{bill_id}").json()
                    if view.get("status") in ("posted", "needs_review", "rejected"):
                        posted[bill_id] = time.perf_counter() - killed
                time.sleep(0.25)
        docs = httpx.get(sim_url + "/sim/ledger", timeout=60).json()["documents"]
    refs = [d["reference_id"] for d in docs]
    seconds = sorted(posted.values())
    print(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "bills": args.bills,
                "settled": len(posted),
                "seconds_from_kill_to_posted": [round(s, 1) for s in seconds],
                "documents_in_sap_before_takeover_counted_once": len(set(refs)),
                "duplicates": len(refs) - len(set(refs)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
