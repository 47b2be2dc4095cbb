"""`bridge sync-inventory` and `bridge import-items` as a person runs them: real processes, a
real terminal (a pty) where it matters, the simulator as SAP, both databases."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from rich.progress import Progress

from app.inventory import repository
from app.platform.db import make_engine, make_session_factory
from app.shell.cli import inventory as cli
from tests.inventory.conftest import generate
from tests.support.bridge import (
    ADMIN_KEY,
    API_KEY,
    ENCRYPTION_KEY,
    Bridge,
    make_settings,
    seed,
    sim_config,
)

BRIDGE = str(Path(sys.executable).with_name("bridge"))
WIDTH = 400  # a JSON log line fits on one row
WINDOW = ("--from", "2024-03-01", "--to", "2024-03-10")
_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str


def environment(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "DATABASE_", "TTY_"))
        and k not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES"}
    }
    env.update(
        DATABASE_URL=url,
        BRIDGE_API_KEY=API_KEY,
        BRIDGE_ADMIN_API_KEY=ADMIN_KEY,
        BRIDGE_ENCRYPTION_KEY=ENCRYPTION_KEY,
        BRIDGE_ALLOW_INSECURE_SAP_URLS="true",
        COLUMNS=str(WIDTH),  # one line stays one line
        TERM="xterm",
    )
    return env


def command(url: str, *args: str) -> Done:
    done = subprocess.run(
        [BRIDGE, *args],
        env=environment(url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def on_a_terminal(url: str, *args: str) -> tuple[int, str]:
    """`bridge ARGS` with stdin, stdout and stderr on a pty; its exit code and all it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, WIDTH, 0, 0))
    process = subprocess.Popen(
        [BRIDGE, *args], env=environment(url), stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    written = bytearray()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            written += chunk
        return process.wait(timeout=30), written.decode()
    finally:
        process.kill()
        process.wait()
        os.close(master)


def screen(output: str) -> list[str]:
    """The rows a terminal shows after `output`, for the codes rich's live display sends: text,
    CR, LF, erase line, cursor up (colours and cursor visibility change nothing here)."""
    rows, row, col, i = [""], 0, 0, 0
    while i < len(output):
        if code := _CSI.match(output, i):
            if code[2] == "K":
                rows[row] = ""
            elif code[2] == "A":
                row = max(0, row - int(code[1] or 1))
            i = code.end()
            continue
        char, i = output[i], i + 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            rows.extend([""] * (row + 1 - len(rows)))
        else:
            line = rows[row].ljust(col)
            rows[row], col = line[:col] + char + line[col + 1 :], col + 1
    return [r.rstrip() for r in rows]


def cell(table: str, label: str) -> str:
    """The value beside `label` in a two-column rich table."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] == label:
            return cells[1]
    raise AssertionError(f"no row {label!r} in:\n{table}")


async def running_run_id(url: str) -> int | None:
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            run = await repository.running_run(session)
            return run.id if run else None
    finally:
        await engine.dispose()


@pytest.fixture
def tenant(db_url: str, sim: httpx.Client) -> str:
    """A migrated database configured against the simulator, which holds goods receipts."""
    seed(make_settings(db_url), sim_config(str(sim.base_url).rstrip("/")))
    return db_url


def test_a_second_sync_exits_3_naming_the_run_in_progress(tenant: str, sim: httpx.Client) -> None:
    generate(sim, seed=4, items=300, days=10)
    sim.put("/sim/materials/settings", json={"page_size": 5, "latency_ms": 1500})
    first = subprocess.Popen(
        [BRIDGE, "sync-inventory", *WINDOW],
        env=environment(tenant),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (run_id := asyncio.run(running_run_id(tenant))) is None:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        second = command(tenant, "sync-inventory", *WINDOW)
        sim.put("/sim/materials/settings", json={"latency_ms": 0})
        stdout, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
        first.wait()
    assert (second.code, second.stdout + second.stderr) == (
        3,
        f"error: an inventory audit is already running (run {run_id})\n",
    )
    # the first ran on undisturbed: the second did not take its run for an abandoned one
    assert first.returncode == 0, stdout + stderr
    assert f"inventory audit run {run_id}: succeeded" in stdout


def above_the_report(rows: list[str]) -> list[str]:
    """The terminal's rows above the report: whatever the bars and log lines left there."""
    title = next(i for i, r in enumerate(rows) if "inventory audit run" in r)
    return [r for r in rows[:title] if r]


def test_on_a_terminal_the_bars_end_full_and_leave_nothing_behind(
    tenant: str, sim: httpx.Client
) -> None:
    generate(sim, seed=3, items=300, days=10)
    sim.put("/sim/materials/settings", json={"page_size": 5, "latency_ms": 30})
    code, written = on_a_terminal(tenant, "sync-inventory", *WINDOW)
    assert code == 0, written
    rows = screen(written)
    pages, items = map(int, cell("\n".join(rows), "pages / items read").split(" / "))
    assert pages > 20  # many redraws, each of which must have wiped the one before
    bars = above_the_report(rows)
    assert len(bars) == 2, bars
    assert re.fullmatch(rf" pages ━+ {pages}/{pages} +\S+", bars[0]), bars
    assert re.fullmatch(rf" items ━+ {items}/{items} +\S+", bars[1]), bars


def test_on_a_terminal_a_warning_prints_whole_above_the_bars(
    tenant: str, sim: httpx.Client
) -> None:
    generate(sim, seed=3, items=300, days=10)
    sim.put("/sim/materials/settings", json={"page_size": 5, "latency_ms": 30})
    sim.put("/sim/materials/faults", json={"page": 4, "status": 400, "times": None})
    code, written = on_a_terminal(tenant, "sync-inventory", *WINDOW)
    assert code == 1, written
    *logs, pages, items = above_the_report(screen(written))
    assert [json.loads(line)["event"] for line in logs] == ["inventory.run.failed"], logs
    assert "Injected error on page 4" in json.loads(logs[0])["reason"]
    # a failed run's bars stay where it stopped, short of the pages SAP said there were
    bar = re.fullmatch(r" pages ━+ (\d+)/(\d+|\?) +\S+", pages)
    assert bar is not None and bar[1] != bar[2], pages
    assert items.startswith(" items ") and "━" in items


async def test_the_summary_says_how_many_materials_it_left_out_and_where_they_are(
    bridge: Bridge, sim: httpx.Client
) -> None:
    generate(sim, seed=9, items=1500, days=10)  # about 100 materials; HMIS knows none of them
    done = await asyncio.to_thread(command, bridge.settings.database_url, "sync-inventory", *WINDOW)
    assert done.code == 0, done.stdout + done.stderr
    run_id = re.search(r"inventory audit run (\d+): succeeded", done.stdout)
    assert run_id is not None
    async with bridge.client() as client:
        listed = (await client.get(f"/inventory/sync/{run_id[1]}")).json()["unmatched_materials"]
    total = len(listed)
    assert total > cli.SHOWN_MATERIALS
    table = done.stdout.split("materials HMIS cannot match", 1)[1]
    shown = [r.split("│")[1].strip() for r in table.splitlines()[3:] if r.startswith("│")]
    assert shown == [m["material"] for m in listed[: cli.SHOWN_MATERIALS]]
    assert (
        f"{total - cli.SHOWN_MATERIALS} more materials HMIS cannot match are not shown; "
        f"GET /inventory/sync/{run_id[1]} lists all {total}\n"
    ) in done.stdout
    assert "━" not in done.stdout.split("materials HMIS")[0]  # the bars went to stderr
    assert re.search(r"pages ━+ (\d+)/\1", done.stderr), done.stderr


def test_a_short_list_of_materials_has_no_note(tenant: str, sim: httpx.Client) -> None:
    generate(sim, seed=3, items=300, days=10)
    done = command(tenant, "sync-inventory", *WINDOW)
    assert done.code == 0 and "materials HMIS cannot match" in done.stdout, done.stdout
    assert "not shown" not in done.stdout


@pytest.mark.parametrize(
    ("data", "encoding", "delimiter"),
    [
        pytest.param(b"item_id,code,name,unit\n1,A,Aspirin,EA\n", "utf-8", ",", id="utf-8 ,"),
        pytest.param(
            b"item_id;code;name;unit\n1;A;caf\xe9;EA\n2;B;Bandage;EA\n",
            "cp1252",
            ";",
            id="cp1252 ;",
        ),
        pytest.param(
            "item_id\tcode\tname\tunit\n1\tA\tAspirin\tEA\n".encode("utf-16"),
            "utf-16-le",
            "tab",
            id="utf-16 tab",
        ),
        pytest.param(b"item_id|code|name|unit\n1|A|Aspirin|EA\n", "utf-8", "|", id="utf-8 |"),
    ],
)
def test_the_import_summary_names_encoding_and_delimiter(
    db_url: str, tmp_path: Path, data: bytes, encoding: str, delimiter: str
) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(data)
    done = command(db_url, "import-items", str(path))
    assert done.code == 0, done.stdout + done.stderr
    assert (cell(done.stdout, "encoding"), cell(done.stdout, "delimiter")) == (encoding, delimiter)
    assert cell(done.stdout, "rejected") == "0"


def test_rejected_rows_are_printed_as_written(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,code,name,unit,active\n1,A,[bold]Aspirin,EA,[/x]\n")
    done = command(db_url, "import-items", str(path))
    assert done.code == 1, done.stdout + done.stderr
    assert "active must be true or false, got '[/x]'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_logging_handlers_on_stderr_print_above_the_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = io.StringIO()
    progress = Progress(console=Console(file=terminal, force_terminal=True, width=80))
    task = progress.add_task("pages", total=3)
    handler = logging.StreamHandler(sys.stderr)  # as app.logging.configure makes it
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    with cli._live(progress):
        for page in range(3):
            logging.getLogger("tests.bars").warning("page %d read", page)
            progress.advance(task)
            progress.refresh()
    assert handler.stream is sys.stderr  # given back when the bars stopped
    rows = [r for r in screen(terminal.getvalue()) if r]
    assert rows[:3] == ["page 0 read", "page 1 read", "page 2 read"]
    assert len(rows) == 4 and rows[3].startswith("pages") and "100%" in rows[3], rows
