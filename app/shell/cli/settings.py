"""The settings every command starts from."""

from __future__ import annotations

import typer
from rich.console import Console

from app.platform.settings import Settings
from app.shell.runtime import StartupError, load_settings


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with one line naming what is missing (every command's start)."""
    try:
        return load_settings()
    except StartupError as exc:
        Console().print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
