"""The package as a wheel installs it: `bridge migrate` needs nothing from the checkout."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.bridge import ADMIN_KEY, API_KEY, ENCRYPTION_KEY

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_migrations_and_migrates_from_anywhere(tmp_path: Path) -> None:
    source = tmp_path / "source"  # setuptools builds in the source tree: not in the checkout's
    for part in ("app", "sapsim"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("hmis_sap_bridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    versions = sorted(p.name for p in (ROOT / "app/shell/migrations/versions").glob("*.py"))
    assert versions, "no migrations found in the checkout"
    assert {f"app/shell/migrations/versions/{v}" for v in versions} <= set(names)
    assert {"app/shell/migrations/env.py", "app/shell/migrations/script.py.mako"} <= set(names)

    installed, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "DATABASE_"))}
    env.update(
        PYTHONPATH=str(installed),  # the wheel's files only: not the checkout
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/wheel.db",
        BRIDGE_API_KEY=API_KEY,
        BRIDGE_ADMIN_API_KEY=ADMIN_KEY,
        BRIDGE_ENCRYPTION_KEY=ENCRYPTION_KEY,
    )
    migrate = subprocess.run(
        [sys.executable, "-P", "-c",
         "import app.shell.cli as cli; print(cli.__file__); cli.main()", "migrate"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert migrate.stdout.startswith(str(installed)), "ran the checkout's code, not the wheel's"
    with sqlite3.connect(tmp_path / "wheel.db") as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert versions[-1].split("_")[3] == revision
