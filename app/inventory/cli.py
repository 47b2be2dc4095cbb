"""`bridge sync-inventory` and `bridge import-items`, registered on the `bridge` command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.db import make_engine, make_session_factory
from app.deps import Runtime
from app.errors import AppError
from app.inventory import importer, service
from app.inventory.schemas import RunDetail
from app.main import build_runtime, close_runtime
from app.sap.material_documents import ReadStats
from app.settings import Settings

console = Console()


def register(app: typer.Typer) -> None:
    """Add the inventory commands to the `bridge` Typer app."""
    app.command("sync-inventory")(sync_inventory)
    app.command("import-items")(import_items)


def _cli_settings() -> Settings:
    from app.cli import settings_or_exit  # late: app.cli imports this module to register it

    return settings_or_exit()


@asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[Runtime]:
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
        with _progress() as progress:
            pages = progress.add_task("pages", total=None)
            items = progress.add_task("items", total=None)

            def advance(stats: ReadStats, items_read: int) -> None:
                progress.update(pages, completed=stats.http_pages, total=stats.pages_planned)
                progress.update(items, completed=items_read)

            try:
                request = service.parse_request(from_date, to_date, trigger="cli")
                started = await service.start_run(runtime, request, config, progress=advance)
                await started.task
            except AppError as exc:
                console.print(f"[red]error:[/red] {exc.detail}", highlight=False)
                return 3 if exc.status_code == 409 else 2
        async with runtime.sessions() as session:
            detail = await service.get_run(session, started.run.id)
    _print_run(detail)
    return 0 if detail.status == "succeeded" else 1


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _print_run(run: RunDetail) -> None:
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
        table.add_row(label, str(value))
    console.print(table)
    if run.unmatched_materials:
        missing = Table(title="materials HMIS cannot match")
        for column in ("material", "quantity", "unit", "items", "first documents"):
            missing.add_column(column)
        for m in run.unmatched_materials[:50]:
            missing.add_row(
                m.material,
                f"{m.quantity:.3f}",
                m.unit,
                str(m.document_items),
                ", ".join(m.documents[:3]),
            )
        console.print(missing)
    for line in [*run.warnings, *([run.error] if run.error else [])]:
        console.print(f"[yellow]{line}[/yellow]", highlight=False)


def import_items(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Upsert the HMIS item master from a CSV file (item_id, code, barcode, name, unit, active)."""
    raise typer.Exit(asyncio.run(_import(_cli_settings(), file)))


async def _import(settings: Settings, file: Path) -> int:
    engine = make_engine(settings.database_url)
    try:
        with _progress() as progress:
            task = progress.add_task("items", total=None)
            report = await importer.import_items(
                make_session_factory(engine), file, lambda n: progress.advance(task, n)
            )
    except importer.MissingColumnsError as exc:
        console.print(f"[red]rejected:[/red] {exc}; nothing was imported", highlight=False)
        return 2
    finally:
        await engine.dispose()
    summary = Table(title=f"import of {file.name}", show_header=False)
    for label, value in (
        ("rows", report.rows),
        ("inserted", report.inserted),
        ("updated", report.updated),
        ("rejected", len(report.rejected)),
    ):
        summary.add_row(label, str(value))
    console.print(summary)
    if report.rejected:
        rejected = Table(title="rejected rows")
        rejected.add_column("line")
        rejected.add_column("reason")
        for row in report.rejected:
            rejected.add_row(str(row.line), row.reason)
        console.print(rejected)
    return 1 if report.rejected else 0
