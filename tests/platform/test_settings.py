"""Start-up refuses missing or placeholder settings with one line naming them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

BRIDGE = str(Path(sys.executable).parent / "bridge")


def run(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "DATABASE_URL"))}
    database = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bridge.db"}
    return subprocess.run(
        [BRIDGE, "serve", "--port", "1"],
        env={**clean, **database, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_key_is_named_in_one_line(tmp_path: Path) -> None:
    result = run(
        {"BRIDGE_ADMIN_API_KEY": "a" * 20, "BRIDGE_ENCRYPTION_KEY": Fernet.generate_key().decode()},
        tmp_path,
    )
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == ["error: invalid settings: BRIDGE_API_KEY is not set"]


def test_a_missing_database_url_is_named_and_no_database_is_created(tmp_path: Path) -> None:
    keys = {"BRIDGE_API_KEY": "h" * 20, "BRIDGE_ADMIN_API_KEY": "a" * 20}
    result = run(
        {**keys, "BRIDGE_ENCRYPTION_KEY": Fernet.generate_key().decode(), "DATABASE_URL": ""},
        tmp_path,
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_placeholder_and_bad_fernet_key_are_refused_without_echo(tmp_path: Path) -> None:
    result = run(
        {
            "BRIDGE_API_KEY": "changeme",
            "BRIDGE_ADMIN_API_KEY": "b" * 20,
            "BRIDGE_ENCRYPTION_KEY": "not-a-fernet-key",
        },
        tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "BRIDGE_API_KEY must be a random value" in output
    assert "BRIDGE_ENCRYPTION_KEY must be a Fernet key" in output
    assert "changeme" not in output and "not-a-fernet-key" not in output
