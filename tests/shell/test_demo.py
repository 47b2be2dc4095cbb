"""`bridge demo --serve --port`: a new user gets the service on their port and, printed, what the
CLI needs to work against the demo database."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import free_port

BRIDGE = str(Path(sys.executable).with_name("bridge"))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "DATABASE_"))}


def exports(output: str) -> dict[str, str]:
    """The variables of the printed `export` lines, read as a shell would."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("export "):
            for word in shlex.split(line)[1:]:
                name, _, value = word.partition("=")
                found[name] = value
    return found


def test_demo_serves_on_the_port_and_prints_what_the_cli_needs(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [BRIDGE, "demo", "--serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env() | {"COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 120
        while "bridge config get" not in output and time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output += line
        assert "demo finished" in output, output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert f"the operator console is http://127.0.0.1:{port}/console" in output
        env = exports(output)
        assert env["DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path}/bridge-demo.db"
        live = httpx.get(f"http://127.0.0.1:{port}/config", headers={
            "X-API-Key": env["BRIDGE_ADMIN_API_KEY"]}, timeout=10)  # fmt: skip
        assert live.status_code == 200
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        got = subprocess.run(
            [BRIDGE, "config", "get", "Company Code"],
            cwd=elsewhere,  # the printed URL is absolute: it works from any folder
            env=clean_env() | env | {"COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert got.returncode == 0, got.stdout + got.stderr
        assert re.search(r"SAP Integration - Company Code\s*│\s*1000", got.stdout), got.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
    assert demo.returncode == 0


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [BRIDGE, "demo", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip() == (
        f"error: port {port} is in use: choose another with --port"
    )
