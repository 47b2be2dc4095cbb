"""The `bridge` command: serve, migrate, demo, sim, and what operators do from a terminal."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from app.shell.cli import bills as bill_commands
from app.shell.cli import inventory as inventory_commands
from app.shell.cli import payments as payment_commands
from app.shell.cli.settings import settings_or_exit
from app.shell.runtime import StartupError

app = typer.Typer(
    help="hmis-sap-bridge: HMIS ↔ SAP S/4HANA Cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    help="Read and change business settings in the database.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
bills_app = typer.Typer(
    help="Bills: preview one before it is pushed; list, show, retry, resolve, cancel.",
    no_args_is_help=True,
)
app.add_typer(bills_app, name="bills")
console = Console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Run the HTTP service (migrations are a separate `bridge migrate` step)."""
    import uvicorn

    from app.shell.main import create_app

    settings = settings_or_exit()
    app = create_app(settings)
    # what start-up built lives as long as the process: keep it out of the cyclic collector's
    # full passes, which otherwise rescan it and stall every request in flight
    gc.freeze()
    # and make those passes rarer: under load they still came every 0.7 s, stopping the event
    # loop for 10-13 ms to find a few hundred objects (measured with gc.callbacks)
    gc.set_threshold(700, 10, 100)
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        log_config=None,
        access_log=False,
    )


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Bring the database schema to the newest revision."""
    from app.shell.migrate import upgrade

    settings = settings_or_exit()
    asyncio.run(upgrade(settings.database_url, revision))
    console.print(f"database migrated to {revision}")


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8600,
) -> None:
    """Run the SAP simulator alone (token, SOAP journal entry, OData read services)."""
    import uvicorn

    from sapsim.app import create_sim_app

    uvicorn.run(create_sim_app(), host=host, port=port, log_level="warning", date_header=False)


@app.command()
def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve", help="Keep both running for /docs")
    ] = False,
    database: Annotated[str, typer.Option(help="SQLite file to (re)create")] = "bridge-demo.db",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The bridge's port (0: any free one)")
    ] = 0,
) -> None:
    """SAP simulator + service + sample bills, end to end on SQLite; no configuration needed.
    With --serve it prints the keys and the environment to use the CLI against the demo."""
    from app.shell.demo import PortTaken, run_demo

    wide = Console(width=max(console.width, 110))  # the ledger table needs the room in a pipe
    try:
        code = run_demo(database, keep_serving=serve_after, console=wide, port=port)
    except PortTaken as exc:
        _fail(str(exc), 2)
    raise typer.Exit(code)


@config_app.command("get")
def config_get(
    key: Annotated[str | None, typer.Argument(help="One key; all when omitted")] = None,
) -> None:
    """Show settings (secrets masked)."""
    from app.config.cli import show

    show(settings_or_exit(), key, console)


@config_app.command("set")
def config_set(
    key: str, value: Annotated[str, typer.Argument(help="New value; '' resets")]
) -> None:
    """Validate and store one setting (audited as `cli`)."""
    from app.config.cli import set_value

    set_value(settings_or_exit(), key, value or None, console)


@config_app.command("generate-key")
def config_generate_key() -> None:
    """Print a new Fernet key for BRIDGE_ENCRYPTION_KEY."""
    from app.config.crypto import SecretBox

    print(SecretBox.generate_key())


@config_app.command("rotate-key")
def config_rotate_key() -> None:
    """Re-encrypt stored secrets under the first key of BRIDGE_ENCRYPTION_KEY (`new,old`)."""
    from app.config.cli import rotate

    count = rotate(settings_or_exit())
    console.print(f"re-encrypted {count} secret value(s) under the new key")


@bills_app.command("preview")
def bills_preview(
    file: Annotated[Path, typer.Argument(help="The push body, as JSON")],
    bill_id: Annotated[str, typer.Option(help="The bill id the push would use")] = "PREVIEW",
    soap: Annotated[bool, typer.Option("--soap", help="Print the SOAP body instead")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON of POST /bills/{id}/preview instead")
    ] = False,
) -> None:
    """Show the journal entry a push of the bill in FILE would post; nothing is recorded or sent.

    Exits 2 for a bad file or bill, 3 when the SAP settings are incomplete, 1 when the
    settings cannot be read from the database."""
    from app.billing import cli as bills

    settings = settings_or_exit()
    if soap and as_json:
        console.print("[red]error:[/red] choose one of --soap and --json", highlight=False)
        raise typer.Exit(bills.BAD_INPUT)
    try:
        result = bills.run(settings, file, bill_id)
    except bills.PreviewFailed as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.code) from None
    if as_json or soap:
        print(bills.as_json(result) if as_json else result.soap_body)
        return
    bills.print_table(result, Console(width=max(console.width, 120)))


@app.command("sap-check")
def sap_check(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print [{check, status, detail, remedy}] instead")
    ] = False,
) -> None:
    """The go-live preflight against the configured SAP tenant: each check pass, warn or
    fail, with what to do. Exits 0 when nothing failed, 1 otherwise; when the settings cannot be
    read, 1 if the database is unreachable and 2 if it or the key must be set up first."""
    import json

    from rich.table import Table

    from app.config.loading import SettingsUnreadable, load_config
    from app.sap.client import SapClient
    from app.shell import preflight

    settings = settings_or_exit()
    try:
        config = load_config(settings)
    except SettingsUnreadable as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.code) from None

    async def check() -> list[preflight.Check]:
        sap = SapClient()
        try:
            return await preflight.run(sap, config)
        finally:
            await sap.aclose()

    checks = asyncio.run(check())
    if as_json:
        print(json.dumps([c.as_dict() for c in checks], indent=2, ensure_ascii=False))
    else:
        table = Table(title="SAP go-live preflight")
        for column in ("check", "status", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        colours = {"pass": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            status = f"[{colours[c.status]}]{c.status}[/{colours[c.status]}]"
            table.add_row(c.check, status, escape(c.detail), escape(c.remedy))
        Console(width=max(console.width, 140)).print(table)
    raise typer.Exit(preflight.exit_code(checks))


bill_commands.register(bills_app)
inventory_commands.register(app)
payment_commands.register(app)


def _quiet_aiosqlite_worker(args: threading.ExceptHookArgs) -> None:
    # aiosqlite's worker thread of a connection that failed to open may report back after
    # asyncio.run() closed the loop; the failure itself was already reported in one line
    closed = isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(
        args.exc_value
    )
    if closed and args.thread is not None and "_connection_worker_thread" in args.thread.name:
        return
    threading.__excepthook__(args)


def main() -> None:
    threading.excepthook = _quiet_aiosqlite_worker
    try:
        app()
    except StartupError as exc:
        _fail(str(exc), 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("BRIDGE_CLI_TRACEBACK"):
            raise
        from app.config.failures import describe

        failure = describe(exc, os.environ.get("DATABASE_URL"))
        _fail(failure.message, failure.exit_code)


def _fail(message: str, code: int) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


__all__ = ["app", "main"]
if __name__ == "__main__":
    main()
