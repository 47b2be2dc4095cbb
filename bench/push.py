"""Benchmark: bills pushed by concurrent HMIS callers against the simulator at SAP-like latency.

    .venv/bin/python bench/push.py [--bills 2000] [--callers 32] [--latency-ms 150] [--db sqlite]

The simulator and the bridge each run as their own process (uvicorn on loopback); this process
is the load generator. The SAP-side limit is `Max Concurrent Calls / latency` (4 / 0.15 s =
26.7 bills/s). Overhead is the response time minus the time the bridge spent with SAP (waiting
for a SAP slot and the call itself), which the bridge reports in `Server-Timing: sap;dur=`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    median,
    migrate,
    percentile,
    raw_request,
    read_response,
    sim_settings,
    simulator,
    wait_http,
    warm_up,
)


def bill(n: int) -> dict:
    return {
        "reference": f"BENCH-{n:06d}",
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
                "description": "Blood count",
                "net_value": "10000.00",
                "department": "LAB",
            },
        ],
    }


Result = tuple[int, float, dict[str, float], float]


async def push_all(url: str, key: str, start: int, count: int, callers: int) -> list[Result]:
    """Push bills `start`… from `callers` keep-alive connections; per push its status, response
    time, the bridge's Server-Timing durations (`app`: arrival to answer, `sap`: with SAP,
    including the wait for a call slot) and when it was sent."""
    host, port = url.removeprefix("http://").split(":")
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    queue = [
        raw_request(host, "POST", f"/bills/BENCH-{n}/push", json.dumps(bill(n)).encode(), headers)
        for n in reversed(range(start, start + count))
    ]
    results: list[Result] = []

    async def caller() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while queue:
            request = queue.pop()
            began = time.perf_counter()
            writer.write(request)
            status, answer = await read_response(reader)
            elapsed = time.perf_counter() - began
            timing = {}
            for part in answer.get("server-timing", "").split(","):
                name, _, dur = part.strip().partition(";dur=")
                if dur:
                    timing[name] = float(dur) / 1000
            results.append((status, elapsed, timing, began))
        writer.close()

    await asyncio.gather(*(caller() for _ in range(callers)))
    return results


def summarize(results: list[Result], wall: float) -> dict:
    """Latency, and overhead = time not spent with SAP: as the caller sees it (response time
    minus `sap`) and inside the bridge (`app` minus `sap`, without the loopback and client);
    how many pushes waited for SAP, and how many took over 50 ms, sent when (ms from the
    first push)."""
    latencies = [r[1] for r in results]
    overhead = [max(0.0, r[1] - r[2].get("sap", 0.0)) for r in results]
    inside = [max(0.0, r[2].get("app", 0.0) - r[2].get("sap", 0.0)) for r in results]
    with_sap = [r[2]["sap"] for r in results if r[2].get("sap")]
    first = min((r[3] for r in results), default=0.0)
    slow_sent = [round((r[3] - first) * 1000) for r in results if r[1] > 0.05]
    codes: dict[int, int] = {}
    for code, *_ in results:
        codes[code] = codes.get(code, 0) + 1
    return {
        "requests": len(results),
        "status_codes": codes,
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(results) / wall, 2),
        "latency_p50_ms": round(median(latencies) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "overhead_p50_ms": round(median(overhead) * 1000, 2),
        "overhead_p99_ms": round(percentile(overhead, 99) * 1000, 2),
        "overhead_in_bridge_p50_ms": round(median(inside) * 1000, 2),
        "waited_for_sap": len(with_sap),
        "waited_for_sap_median_ms": round(median(with_sap) * 1000, 1) if with_sap else 0,
        "over_50ms": len(slow_sent),
        "over_50ms_sent_ms": [min(slow_sent), max(slow_sent)] if slow_sent else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bills", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-push-"))
    sim_port, bridge_port = free_port(), free_port()
    sim_url, bridge_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{bridge_port}"
    with database(args.db, workdir) as db_url:
        env = bridge_env(db_url)
        migrate(env)
        with (
            simulator(sim_port, workdir / "sim.log"),
            bridge_server(env, bridge_port, workdir / "bridge.log"),
        ):
            wait_http(sim_url + "/sim/stats")
            wait_http(bridge_url + "/health/live")
            configure(
                bridge_url, env["BRIDGE_ADMIN_API_KEY"], sim_settings(sim_url, args.max_concurrent)
            )
            httpx.put(
                sim_url + "/sim/faults", json={"latency_ms": args.latency_ms}
            ).raise_for_status()
            key = env["BRIDGE_API_KEY"]
            asyncio.run(push_all(bridge_url, key, 900000, 8, 4))  # warm-up: token, connections
            asyncio.run(warm_up(bridge_url, key, args.callers))

            began = time.perf_counter()
            results = asyncio.run(push_all(bridge_url, key, 0, args.bills, args.callers))
            loaded = summarize(results, time.perf_counter() - began)
            single = summarize(asyncio.run(push_all(bridge_url, key, 500000, 50, 1)), 1.0)
            stats = httpx.get(sim_url + "/sim/stats").json()
            docs = httpx.get(sim_url + "/sim/ledger").json()["documents"]
    measured = {f"BENCH-{n:06d}" for n in range(args.bills)}
    # HMIS's reference is in the header's Reference 1; DocumentReferenceID is the bridge's own
    refs = [d["reference1"] for d in docs if d["reference1"] in measured]
    limit = args.max_concurrent / (args.latency_ms / 1000)
    report = {
        "command": " ".join(sys.argv),
        "db": args.db,
        "callers": args.callers,
        "sap_latency_ms": args.latency_ms,
        "max_concurrent_calls": args.max_concurrent,
        "sap_side_limit_per_s": round(limit, 2),
        "loaded": loaded,
        "throughput_vs_limit": round(loaded["throughput_per_s"] / limit, 3),
        "single_caller_overhead_p50_ms": round(single["latency_p50_ms"] - args.latency_ms, 2),
        "single_caller_overhead_by_server_timing_p50_ms": single["overhead_p50_ms"],
        "single_caller_overhead_in_bridge_p50_ms": single["overhead_in_bridge_p50_ms"],
        "token_requests": stats.get("token_requests"),
        "documents": len(refs),
        "missing": len(measured - set(refs)),
        "duplicates": len(refs) - len(set(refs)),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
