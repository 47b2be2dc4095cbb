"""`bridge sync-inventory` and `bridge import-items`, registered on the `bridge` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.config.service import BridgeConfig
from app.inventory import importer, service
from app.inventory.runtime import InventoryRuntime
from app.inventory.schemas import RunDetail
from app.platform import logging as applog
from app.platform.db import make_engine, make_session_factory
from app.platform.errors import AppError
from app.platform.settings import Settings
from app.sap.material_documents import ReadStats
from app.shell.cli.settings import settings_or_exit
from app.shell.runtime import build_runtime, close_runtime

console = Console()
#: unmatched materials the summary lists; the API lists them all
SHOWN_MATERIALS = 50


def register(app: typer.Typer) -> None:
    """Add the inventory commands to the `bridge` Typer app."""
    app.command("sync-inventory")(sync_inventory)
    app.command("import-items")(import_items)


def _cli_settings() -> Settings:
    settings = settings_or_exit()
    if not structlog.is_configured():  # the bridge's warnings on stderr, not amid the report
        applog.configure(settings.log_format, level=logging.WARNING)
    return settings


@asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[InventoryRuntime]:
    runtime = build_runtime(settings)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


def sync_inventory(
    from_date: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD: backfill")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD; default today")] = None,
) -> None:
    """Audit SAP goods receipts against the HMIS item master, with a progress bar."""
    raise typer.Exit(asyncio.run(_sync(_cli_settings(), from_date, to_date)))


async def _sync(settings: Settings, from_date: str | None, to_date: str | None) -> int:
    async with _runtime(settings) as runtime:
        config = await runtime.config.snapshot(runtime.sessions)
        if not config.enabled:
            console.print("skipped: SAP integration is disabled")
            return 0
        try:
            request = service.parse_request(from_date, to_date, trigger="cli")
            detail = await _run_with_bars(runtime, request, config)
        except AppError as exc:
            _error(exc.detail)
            return 3 if exc.status_code == 409 else 2
    _print_run(detail)
    return 0 if detail.status == "succeeded" else 1


async def _run_with_bars(
    runtime: InventoryRuntime, request: service.SyncRequest, config: BridgeConfig
) -> RunDetail:
    """Start the run, then show its pages and items until it ends. A refusal (one is already
    running, a bad window) comes from `start_run`, before any bar is drawn: one line."""
    progress = _progress()
    pages = progress.add_task("pages", total=None)
    items = progress.add_task("items", total=None)

    def advance(stats: ReadStats, items_read: int) -> None:
        progress.update(pages, completed=stats.http_pages, total=stats.pages_planned)
        progress.update(items, completed=items_read)

    started = await service.start_run(runtime, request, config, progress=advance)
    with _live(progress):
        await started.task
        async with runtime.sessions() as session:
            detail = await service.get_run(session, started.run.id)
        if detail.status == "succeeded":
            _fill_bars(progress, {pages: detail.pages_read, items: detail.items_read})
    return detail


def _fill_bars(progress: Progress, read: dict[TaskID, int]) -> None:
    """End each bar full at what the run read, whatever was planned: SAP's count may have been
    unknown, or off when SAP cut pages short. (A failed run's bars stay where it stopped.)"""
    for task, done in read.items():
        progress.update(task, completed=done, total=done)


def _progress() -> Progress:
    """Bars on stderr, so that stdout carries only the report (`> report.txt` works)."""
    return Progress(
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
        redirect_stdout=True,
        redirect_stderr=True,
    )


@contextmanager
def _live(progress: Progress) -> Iterator[None]:
    """The bars, with each log line printed above them while they are live, not through them.

    On a terminal rich swaps sys.stdout and sys.stderr for proxies that do this, and structlog
    looks the stream up for every line; logging handlers that hold the real stream are pointed
    at the proxy for as long as the bars are live.
    """
    real = (sys.stdout, sys.stderr)
    with progress:
        moved = _point_handlers(dict(zip(real, (sys.stdout, sys.stderr), strict=True)))
        try:
            yield
        finally:
            for handler, stream in moved:
                handler.setStream(stream)


def _point_handlers(proxies: dict[TextIO, TextIO]) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point the root logger's handlers that write to a key of `proxies` at its value."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            proxy = proxies.get(handler.stream)
            if proxy is not None and proxy is not handler.stream:
                moved.append((handler, handler.stream))
                handler.setStream(proxy)
    return moved


def _error(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _print_run(run: RunDetail) -> None:
    console.print(_run_table(run))
    if run.unmatched_materials:
        console.print(_unmatched_table(run))
        _print_hidden_count(run)
    for line in [*run.warnings, *([run.error] if run.error else [])]:
        console.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)


def _run_table(run: RunDetail) -> Table:
    table = Table(title=f"inventory audit run {run.run_id}: {run.status}", show_header=False)
    for label, value in (
        ("window", f"{run.from_date} .. {run.to_date} ({run.mode})"),
        ("plant / match field", f"{run.plant or 'all'} / {run.code_field}"),
        ("pages / items read", f"{run.pages_read} / {run.items_read}"),
        ("counted items", run.total_document_items),
        ("matched", run.matched_items),
        ("unmatched", run.unmatched_items),
        ("inactive HMIS item", run.inactive_items),
        ("cancelled (excluded)", run.cancelled_items),
        ("ignored movements", run.ignored_items),
        ("watermark", run.watermark or "-"),
    ):
        table.add_row(label, escape(str(value)))
    return table


def _unmatched_table(run: RunDetail) -> Table:
    table = Table(title="materials HMIS cannot match")
    for column in ("material", "quantity", "unit", "items", "first documents"):
        table.add_column(column)
    for m in run.unmatched_materials[:SHOWN_MATERIALS]:
        table.add_row(
            escape(m.material),
            f"{m.quantity:.3f}",
            escape(m.unit),
            str(m.document_items),
            escape(", ".join(m.documents[:3])),
        )
    return table


def _print_hidden_count(run: RunDetail) -> None:
    total = len(run.unmatched_materials)
    if total > SHOWN_MATERIALS:
        console.print(
            f"{total - SHOWN_MATERIALS} more materials HMIS cannot match are not shown; "
            f"GET /inventory/sync/{run.run_id} lists all {total}",
            highlight=False,
            soft_wrap=True,
        )


def import_items(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Upsert the HMIS item master from a CSV file (item_id, code, barcode, name, unit, active)."""
    raise typer.Exit(asyncio.run(_import(_cli_settings(), file)))


async def _import(settings: Settings, file: Path) -> int:
    engine = make_engine(settings.database_url)
    try:
        progress = _progress()
        task = progress.add_task("items", total=None)
        with _live(progress):
            report = await importer.import_items(
                make_session_factory(engine), file, lambda n: progress.advance(task, n)
            )
    except importer.MissingColumnsError as exc:
        console.print(
            f"[red]rejected:[/red] {escape(str(exc))}; nothing was imported", highlight=False
        )
        return 2
    finally:
        await engine.dispose()
    _print_import(file, report)
    return 1 if report.rejected else 0


def _print_import(file: Path, report: importer.ImportReport) -> None:
    summary = Table(title=f"import of {escape(file.name)}", show_header=False)
    for label, value in (
        ("rows", report.rows),
        ("inserted", report.inserted),
        ("updated", report.updated),
        ("rejected", len(report.rejected)),
        ("encoding", report.encoding),
        ("delimiter", "tab" if report.delimiter == "\t" else report.delimiter),
    ):
        summary.add_row(label, escape(str(value)))
    console.print(summary)
    if report.rejected:
        rejected = Table(title="rejected rows")
        rejected.add_column("line")
        rejected.add_column("reason")
        for row in report.rejected:
            rejected.add_row(str(row.line), escape(row.reason))
        console.print(rejected)
