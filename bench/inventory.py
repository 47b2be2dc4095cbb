"""Benchmark of the pharmacy audit: 100,000 goods-receipt items on ~2,000 pages at 40 ms a page
against 50,000 HMIS items, with the simulator and the bridge in separate processes.

    .venv/bin/python bench/inventory.py [--database-url URL] [--items 100000] [--pages 2000]

Prints the PUT /inventory/items time (50,000 items in 5 calls), the audit time, pages read, the
bridge process's peak resident memory (VmHWM) and whether the result equals the ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import sim_settings  # noqa: E402

from app.config.crypto import SecretBox  # noqa: E402
from app.config.keys import PREFIX  # noqa: E402
from app.config.service import ConfigService  # noqa: E402
from app.platform.db import make_engine, make_session_factory  # noqa: E402
from app.shell.migrate import upgrade  # noqa: E402

API_KEY, ADMIN_KEY = "bench-hmis-key-0123456789", "bench-admin-key-0123456789"
ENCRYPTION_KEY = Fernet.generate_key().decode()
HMIS_ITEMS = 50_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *args,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{args[0]} did not start")


async def configure(url: str, sim_url: str) -> None:
    engine = make_engine(url)
    service = ConfigService(SecretBox(ENCRYPTION_KEY), allow_insecure_urls=True)
    values = sim_settings(sim_url)
    async with make_session_factory(engine)() as session, session.begin():
        for key, value in values.items():
            await service.set_value(session, PREFIX + key, value, actor="bench", request_id=None)
    await engine.dispose()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=int, default=40)
    opts = parser.parse_args()
    url = opts.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    asyncio.run(upgrade(url))
    sim_port, bridge_port = free_port(), free_port()
    sim = start(["--factory", "sapsim.app:create_sim_app"], {}, sim_port)
    sim_url = f"http://127.0.0.1:{sim_port}"
    asyncio.run(configure(url, sim_url))
    env = {
        "DATABASE_URL": url,
        "BRIDGE_API_KEY": API_KEY,
        "BRIDGE_ADMIN_API_KEY": ADMIN_KEY,
        "BRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "BRIDGE_SCHEDULER_ENABLED": "false",
        "BRIDGE_OUTBOX_ENABLED": "false",
        "BRIDGE_ALLOW_INSECURE_SAP_URLS": "true",
        "BRIDGE_LOG_FORMAT": "json",
    }
    bridge = start(["app.main:app"], env, bridge_port)
    try:
        report = run(sim_url, f"http://127.0.0.1:{bridge_port}", opts)
        report["peak_rss_mb"] = round(peak_rss_mb(bridge.pid), 1)
        report["database"] = url.split(":", 1)[0]
        for key, value in report.items():
            print(f"{key:>28}: {value}")
    finally:
        bridge.terminate()
        sim.terminate()
        bridge.wait(10)
        sim.wait(10)


def run(sim_url: str, bridge_url: str, opts: argparse.Namespace) -> dict[str, Any]:
    sim = httpx.Client(base_url=sim_url, timeout=300)
    bridge = httpx.Client(base_url=bridge_url, timeout=600, headers={"X-API-Key": API_KEY})
    data = sim.post(
        "/sim/materials/generate",
        json={
            "seed": 2024,
            "items": opts.items,
            "start": "2024-01-01",
            "days": 60,
            "extra_hmis_items": 0,
        },
    ).json()
    known = len(data["hmis_items"])
    data = sim.post(
        "/sim/materials/generate",
        json={
            "seed": 2024,
            "items": opts.items,
            "start": "2024-01-01",
            "days": 60,
            "extra_hmis_items": max(0, HMIS_ITEMS - known),
        },
    ).json()
    page_size = math.ceil(data["headers"] / opts.pages)
    sim.put(
        "/sim/materials/settings", json={"page_size": page_size, "latency_ms": opts.latency_ms}
    ).raise_for_status()
    items = data["hmis_items"]
    began = time.perf_counter()
    for offset in range(0, len(items), 10_000):
        bridge.put("/inventory/items", json=items[offset : offset + 10_000]).raise_for_status()
    put_seconds = time.perf_counter() - began
    began = time.perf_counter()
    response = bridge.post(
        "/inventory/sync",
        params={"from_date": "2024-01-01", "to_date": "2024-03-10", "wait": "true"},
    )
    audit_seconds = time.perf_counter() - began
    run = response.json()
    truth = sim.get(
        "/sim/materials/expected", params={"from_date": "2024-01-01", "to_date": "2024-03-10"}
    ).json()
    exact = all(
        run[k] == truth[k]
        for k in (
            "matched_items",
            "unmatched_items",
            "inactive_items",
            "cancelled_items",
            "items_read",
        )
    )
    return {
        "hmis_items_put": f"{len(items)} in {math.ceil(len(items) / 10_000)} calls",
        "put_seconds": round(put_seconds, 2),
        "goods_receipt_items": data["items"],
        "material_documents": data["headers"],
        "server_page_size": page_size,
        "page_latency_ms": opts.latency_ms,
        "run_status": run["status"],
        "pages_read": run["pages_read"],
        "sequential_estimate_seconds": round(run["pages_read"] * opts.latency_ms / 1000, 1),
        "audit_seconds": round(audit_seconds, 2),
        "matched/unmatched/inactive": f"{run['matched_items']}/{run['unmatched_items']}/"
        f"{run['inactive_items']}",
        "equals_ground_truth": exact,
    }


if __name__ == "__main__":
    main()
