"""Job locks across real processes (both databases) and between tasks of one process."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.platform.locks import job_lock, sqlite_lock_path

ROOT = Path(__file__).resolve().parents[2]
LOCK = "inventory-sync"
# Takes the lock, says whether it got it and, if it did, holds it until its stdin has a line or
# is closed (or the process is killed).
HOLDER = """
import asyncio, sys
from sqlalchemy.ext.asyncio import create_async_engine
from app.platform.locks import job_lock

async def main() -> None:
    engine = create_async_engine(sys.argv[1])
    async with job_lock(engine, sys.argv[2]) as acquired:
        print("acquired" if acquired else "busy", flush=True)
        if acquired:
            sys.stdin.readline()
    await engine.dispose()

asyncio.run(main())
"""


def start_holder(url: str, name: str = LOCK) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def answer(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    assert ready, "the helper process said nothing within 60 s"
    return process.stdout.readline().strip()


def try_once(url: str, name: str = LOCK) -> str:
    """A second process's answer: it takes the lock if it can and lets go at once."""
    done = subprocess.run(
        [sys.executable, "-c", HOLDER, url, name],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    if process.stdin is not None:
        process.stdin.close()
    if process.stdout is not None:
        process.stdout.close()


def test_a_second_process_is_refused_until_the_holder_lets_go(db_url: str) -> None:
    holder = start_holder(db_url)
    try:
        assert answer(holder) == "acquired"
        assert try_once(db_url) == "busy"
        assert try_once(db_url, "clearing-sync") == "acquired"  # another job's lock is apart
        assert holder.stdin is not None
        holder.stdin.close()  # the holder leaves its block: released in `finally`
        assert holder.wait(timeout=30) == 0
        assert try_once(db_url) == "acquired"
    finally:
        stop(holder)


def test_a_killed_holder_leaves_no_stale_lock(db_url: str) -> None:
    holder = start_holder(db_url)
    try:
        assert answer(holder) == "acquired"
        assert try_once(db_url) == "busy"
        os.kill(holder.pid, signal.SIGKILL)  # no `finally` runs: the OS (or server) must free it
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop(holder)
    deadline = time.monotonic() + 15  # PostgreSQL notices the closed connection at once, too
    while (outcome := try_once(db_url)) != "acquired" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert outcome == "acquired"


def test_the_sqlite_lock_file_lies_beside_the_database(sqlite_url: str) -> None:
    database = make_url(sqlite_url).database
    assert sqlite_lock_path(make_url(sqlite_url), LOCK) == f"{database}.{LOCK}.lock"
    holder = start_holder(sqlite_url)
    try:
        assert answer(holder) == "acquired"
        assert Path(f"{database}.{LOCK}.lock").is_file()
    finally:
        stop(holder)


async def test_tasks_of_one_process_exclude_each_other(db_url: str) -> None:
    one, two = create_async_engine(db_url), create_async_engine(db_url)
    try:
        async with job_lock(one, LOCK) as first, job_lock(two, LOCK) as second:
            assert (first, second) == (True, False)
        async with job_lock(two, LOCK) as again:
            assert again is True
    finally:
        await one.dispose()
        await two.dispose()


async def test_two_spellings_of_one_sqlite_file_share_the_lock(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(make_url(sqlite_url).database or "")
    monkeypatch.chdir(path.parent)
    absolute = create_async_engine(sqlite_url)
    relative = create_async_engine(f"sqlite+aiosqlite:///{path.name}")
    try:
        # the registry keys on the URL and says yes to both; the file lock still says no
        async with job_lock(absolute, LOCK) as first, job_lock(relative, LOCK) as second:
            assert (first, second) == (True, False)
    finally:
        await absolute.dispose()
        await relative.dispose()


async def test_an_in_memory_database_uses_the_registry_only() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert sqlite_lock_path(engine.url, LOCK) is None
        async with job_lock(engine, LOCK) as first, job_lock(engine, LOCK) as second:
            assert (first, second) == (True, False)
        async with job_lock(engine, LOCK) as again:
            assert again is True
    finally:
        await engine.dispose()


async def test_a_lock_file_that_cannot_be_made_is_a_503_for_the_run_not_a_hang(
    sqlite_url: str, sim_server: str
) -> None:
    from app.inventory import service
    from app.platform.errors import AppError
    from tests.support.bridge import RULES, make_settings, replica, seed_config, sim_config

    path = sqlite_lock_path(make_url(sqlite_url), service.LOCK_NAME)
    assert path is not None
    await seed_config(make_settings(sqlite_url), sim_config(sim_server.rstrip("/")), RULES)
    Path(path).unlink(missing_ok=True)
    os.mkdir(path)  # a directory where the lock file should be: os.open fails (EISDIR)
    try:
        async with replica(sqlite_url) as runtime:
            config = await runtime.config.snapshot(runtime.sessions)
            request = service.parse_request(None, None, trigger="cli")
            with pytest.raises(AppError) as refused:
                # wait_for only turns the hang this guards against into a failure
                await asyncio.wait_for(service.start_run(runtime, request, config), 60)
    finally:
        os.rmdir(path)
    assert refused.value.status_code == 503
    assert refused.value.detail.startswith(f"cannot take the job lock {path} (")
