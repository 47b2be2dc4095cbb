"""Shared plumbing for the benchmarks: processes on loopback, throwaway databases, stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(url)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=out, cwd=ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def migrate(env: dict[str, str]) -> None:
    """`bridge migrate` against the database in `env`."""
    subprocess.run(
        [str(BIN / "bridge"), "migrate"], env={**os.environ, **env}, check=True, capture_output=True
    )


def simulator(port: int, log: Path) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """The SAP simulator on loopback."""
    return process([str(BIN / "bridge"), "sim", "--port", str(port)], {}, log)


def bridge_server(
    env: dict[str, str], port: int, log: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`bridge serve` on loopback with `env`."""
    serve = [str(BIN / "bridge"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return process(serve, env, log)


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir}/bench-{uuid.uuid4().hex[:6]}.db"
        return
    name = f"bridge_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + f"/{name}"
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def bridge_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "BRIDGE_API_KEY": secrets.token_urlsafe(24),
        "BRIDGE_ADMIN_API_KEY": secrets.token_urlsafe(24),
        "BRIDGE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ALLOW_INSECURE_SAP_URLS": "true",
        "BRIDGE_SCHEDULER_ENABLED": "false",
        "BRIDGE_LOG_FORMAT": "json",
    }


def sim_settings(sim_url: str, max_concurrent: int = 4) -> dict[str, str]:
    """The business settings that point a bridge at the simulator's default tenant."""
    return {
        "Base URL": sim_url,
        "Client ID": "sim-client",
        "Client Secret": "sim-secret",
        "Company Code": "1000",
        "AR Account": "12100000",
        "Revenue Account": "41000000",
        "Max Concurrent Calls": str(max_concurrent),
        "Enabled": "true",
    }


def configure(bridge_url: str, admin_key: str, values: dict[str, str]) -> None:
    with httpx.Client(base_url=bridge_url, headers={"X-API-Key": admin_key}) as client:
        for key, value in values.items():
            client.put(f"/config/SAP Integration - {key}", json={"value": value}).raise_for_status()


def raw_request(host: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A pre-built HTTP/1.1 request: the load generator spends its CPU on the wire, not on an
    HTTP library, and leaves the shared cores to the servers it measures."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names) of one response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", 0)))
    return int(status_line.split(" ", 2)[1]), headers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc): steadier than
    throughput on a shared machine, since it does not count time spent waiting for a core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def profiled(pid: int, output: str | None) -> Iterator[None]:
    """Sample the server with py-spy (collapsed stacks, for flame graphs) while it is loaded."""
    if not output:
        yield
        return
    command = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw"]
    spy = subprocess.Popen(
        [*command, "--rate", "250", "--nonblocking", "--output", output],
        stdout=subprocess.DEVNULL,  # its progress lines would mix with the JSON report
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)


def stolen_seconds() -> float:
    """CPU time the hypervisor gave to other guests, summed over this VM's cores (/proc/stat).
    Reported beside each measurement: on a shared host it explains runs that differ."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def warm_up(url: str, key: str, callers: int, rounds: int = 4) -> None:
    """Concurrent reads so the service's connection pool is as warm as in steady operation."""
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": key}, limits=limits, timeout=60
    ) as client:
        for _ in range(rounds):
            await asyncio.gather(
                *(client.get("/bills", params={"limit": 1}) for _ in range(callers))
            )


def group_commit(url_base: str, writer: str) -> dict[str, Any]:
    """Transactions a group-commit writer committed: count, mean size and time, and how many
    took longer than 25 / 100 ms (from the bridge's `/metrics`)."""
    samples: dict[str, float] = {}
    for line in httpx.get(url_base + "/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', name))
        if name.startswith("bridge_group_commit_") and labels.pop("writer", None) == writer:
            bucket = f'{{le="{labels["le"]}"}}' if "le" in labels else ""
            samples[name.split("{")[0] + bucket] = float(value)
    count = samples.get("bridge_group_commit_batch_size_count", 0)
    slow = 'bridge_group_commit_duration_seconds_bucket{{le="{}"}}'
    return {
        "transactions": count,
        "mean_batch": round(samples.get("bridge_group_commit_batch_size_sum", 0) / (count or 1), 1),
        "mean_write_ms": round(
            samples.get("bridge_group_commit_duration_seconds_sum", 0) * 1000 / (count or 1), 2
        ),
        "over_25_ms": count - samples.get(slow.format("0.025"), count),
        "over_100_ms": count - samples.get(slow.format("0.1"), count),
    }
