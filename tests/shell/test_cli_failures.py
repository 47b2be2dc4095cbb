"""What a person can get wrong around a `bridge` command ends in one line and an exit code.

Each case runs the installed `bridge` executable in a real process, as a person would, and checks
that it prints exactly one line naming the problem (no traceback) and exits non-zero.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from app.config.failures import describe
from tests.support.bridge import ADMIN_KEY, API_KEY, ENCRYPTION_KEY
from tests.support.database import PG_ADMIN_DSN, create_sqlite

BRIDGE = str(Path(sys.executable).with_name("bridge"))
CSV = "item_id,code,name,unit\n1,MED-1,Paracetamol,TAB\n"
SECRET_KEY = "SAP Integration - Client Secret"
PG_BASE = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")


def run(database_url: str, *args: str, key: str = ENCRYPTION_KEY, cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "DATABASE_"))}
    env.update(
        DATABASE_URL=database_url,
        BRIDGE_API_KEY=API_KEY,
        BRIDGE_ADMIN_API_KEY=ADMIN_KEY,
        BRIDGE_ENCRYPTION_KEY=key,
        COLUMNS="300",  # one line stays one line
    )
    done = subprocess.run(
        [BRIDGE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


COMMANDS = [("config", "get"), ("import-items", "items.csv"), ("sync-inventory",), ("sap-check",)]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "items.csv").write_text(CSV)
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unmigrated_sqlite_database_says_run_migrate(workdir: Path, command: tuple[str]) -> None:
    code, output = run(f"sqlite+aiosqlite:///{workdir}/new.db", *command, cwd=workdir)
    assert code == 2
    assert one_line(output) == (
        f"error: the database {workdir}/new.db is not migrated: run `bridge migrate` first"
    )


@pytest.mark.parametrize("command", COMMANDS[:2], ids=" ".join)
def test_an_unmigrated_postgresql_database_says_run_migrate(
    postgresql_url: str, workdir: Path, command: tuple[str]
) -> None:
    name = f"bridge_empty_{uuid.uuid4().hex[:8]}"

    async def create_drop(sql: str) -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(create_drop(f'CREATE DATABASE "{name}"'))
    try:
        code, output = run(f"{PG_BASE}/{name}", *command, cwd=workdir)
    finally:
        asyncio.run(create_drop(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert code == 2
    assert "is not migrated: run `bridge migrate` first" in one_line(output)


@pytest.mark.parametrize("command", [*COMMANDS, ("migrate",)], ids=" ".join)
def test_an_unreachable_postgresql_names_where_and_hides_the_password(
    workdir: Path, command: tuple[str]
) -> None:
    code, output = run(
        "postgresql+asyncpg://bridge:hunter2-secret@127.0.0.1:9/hmis", *command, cwd=workdir
    )
    assert code == 1
    line = one_line(output)
    assert line.startswith("error: cannot reach the database 127.0.0.1:9/hmis (")
    assert line.endswith("check DATABASE_URL and that the server is running")
    assert "hunter2" not in output


def test_a_missing_postgresql_database_and_a_missing_sqlite_folder(workdir: Path) -> None:
    code, output = run(f"{PG_BASE}/no_such_db_{uuid.uuid4().hex[:6]}", "config", "get", cwd=workdir)
    assert (code, "does not exist: create it, or check DATABASE_URL" in one_line(output)) == (
        2,
        True,
    )
    code, output = run("sqlite+aiosqlite:////nonexistent/folder/b.db", "migrate", cwd=workdir)
    assert code == 2
    assert one_line(output) == (
        "error: cannot open the SQLite file /nonexistent/folder/b.db: its folder must exist and "
        "be writable"
    )


@pytest.mark.parametrize("command", COMMANDS[::2], ids=" ".join)
def test_a_wrong_encryption_key_names_the_key_and_how_rotation_works(
    workdir: Path, command: tuple[str]
) -> None:
    url = asyncio.run(create_sqlite(str(workdir)))
    assert run(url, "config", "set", SECRET_KEY, "s3cret-value", cwd=workdir)[0] == 0
    code, output = run(url, *command, key=Fernet.generate_key().decode(), cwd=workdir)
    assert code == 2
    line = one_line(output)
    assert line.startswith(
        "error: a stored secret cannot be decrypted with BRIDGE_ENCRYPTION_KEY: set the key"
    )
    assert "s3cret-value" not in output


def test_migrate_prints_only_its_own_line(workdir: Path) -> None:
    code, output = run(f"sqlite+aiosqlite:///{workdir}/m.db", "migrate", cwd=workdir)
    assert (code, output.strip()) == (0, "database migrated to head")


def test_an_unknown_exception_is_one_line_that_says_it_is_a_bug() -> None:
    failure = describe(KeyError("bills"), "sqlite+aiosqlite:///x.db")
    assert failure.exit_code == 70
    assert failure.message.startswith("unexpected KeyError: 'bills' (a bug in the bridge")


def test_sap_out_of_reach_is_not_blamed_on_the_database() -> None:
    request = httpx.Request("POST", "https://my-tenant.s4hana.cloud.sap/sap/bc/srt")
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as os_error:
            raise httpx.ConnectError("refused", request=request) from os_error
    except httpx.ConnectError as exc:
        failure = describe(exc, "sqlite+aiosqlite:///x.db")
    assert failure.exit_code == 1
    assert failure.message.startswith("cannot reach my-tenant.s4hana.cloud.sap (ConnectError)")


def test_a_context_suppressed_with_from_none_is_not_read() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            raise KeyError("bills") from None
    except KeyError as exc:
        failure = describe(exc, "sqlite+aiosqlite:///x.db")
    assert failure.exit_code == 70
