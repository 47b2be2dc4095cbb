"""The `bridge` command: every command answers --help, and the contract's commands exist."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from app.shell.cli import app

CONTRACT = {
    ("serve",),
    ("migrate",),
    ("demo",),
    ("sim",),
    ("sync-inventory",),
    ("import-items",),
    ("config", "get"),
    ("config", "set"),
    ("config", "rotate-key"),
    ("bills", "preview"),
    ("bills", "list"),
    ("bills", "show"),
    ("bills", "retry"),
    ("bills", "resolve"),
    ("bills", "cancel"),
    ("payments", "unmatched"),
    ("payments", "match"),
    ("payments", "accept"),
    ("payments", "dismiss"),
    ("sap-check",),
}


def _children(command: Any) -> dict[str, Any]:
    """Subcommands of a group (Typer may vendor its own click, so no isinstance checks)."""
    if not hasattr(command, "list_commands"):
        return {}
    context = command.context_class(command)
    return {name: command.get_command(context, name) for name in command.list_commands(context)}


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in _children(group).items():
        yield from commands(command, (*path, name))


ALL = sorted(commands(typer.main.get_command(app)))


def test_the_contract_commands_exist() -> None:
    assert set(ALL) >= CONTRACT, sorted(CONTRACT - set(ALL))


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "bridge")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command: Any = typer.main.get_command(app)
    for name in path:
        command = _children(command)[name]
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"


def test_installed_entry_point_answers_help() -> None:
    bridge = Path(sys.executable).parent / "bridge"
    result = subprocess.run([str(bridge), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for name in ("serve", "migrate", "demo", "sim", "config"):
        assert name in result.stdout
