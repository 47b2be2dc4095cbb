"""`bridge payments …`: list the payments waiting for an operator and decide about them.

The commands call the service functions the API and the console call (`app.payments.decisions`),
on the database in `DATABASE_URL`, recorded with the actor `cli`. Exits: 0 done, 2 bad input,
3 the payment's state does not allow it (or it changed meanwhile), 4 no such payment or bill,
1 the database is unavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.payments import decisions
from app.payments.models import STATUSES, UNMATCHED
from app.payments.schemas import PaymentDetail, PaymentPage
from app.platform.db import make_engine, make_session_factory, transaction
from app.platform.errors import AppError
from app.platform.settings import Settings
from app.shell.cli.settings import settings_or_exit

DATABASE_UNAVAILABLE, BAD_INPUT, WRONG_STATE, NOT_FOUND = 1, 2, 3, 4
ACTOR = "cli"
console = Console()
T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add the `payments` command group to the `bridge` Typer app."""
    payments = typer.Typer(
        help="Payments waiting for an operator: list them, match, accept or dismiss.",
        no_args_is_help=True,
    )
    payments.command("unmatched")(unmatched)
    payments.command("match")(match)
    payments.command("accept")(accept)
    payments.command("dismiss")(dismiss)
    app.add_typer(payments, name="payments")


PaymentId = Annotated[int, typer.Argument(min=1, max=2**63 - 1, help="The payment's id")]
NoteOption = Annotated[
    str, typer.Option("--note", help="Why: what was checked (required, kept in the audit trail)")
]


def unmatched(
    status: Annotated[
        str, typer.Option(help=f"One of {', '.join(STATUSES)}", show_default=True)
    ] = UNMATCHED,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many")] = 50,
    search: Annotated[
        str | None,
        typer.Option("--search", help="Part of a bill reference, payment document or bill id"),
    ] = None,
) -> None:
    """List payments in a status (default: unmatched), newest first, as a table."""

    async def work(session: AsyncSession) -> PaymentPage:
        return await decisions.page(session, status, search, None, limit)

    result = _run(work)
    if not result.items:
        console.print(f"no {escape(status)} payments", highlight=False)
        return
    table = Table(title=f"{status} payments, newest first")
    for column in ("id", "document / year", "reference", "bill", "amount", "posted", "reasons"):
        table.add_column(column, overflow="fold", justify="right" if column == "amount" else "left")
    for p in result.items:
        table.add_row(
            str(p.id),
            escape(f"{p.company_code}/{p.payment_document}/{p.payment_fiscal_year or '-'}"),
            escape(p.bill_reference),
            escape(p.bill_id or "-"),
            escape(f"{p.amount} {p.currency}"),
            str(p.posting_date or "-"),
            escape("; ".join(p.reasons) or "-"),
        )
    Console(width=max(console.width, 140)).print(table)
    if result.next_cursor:
        console.print(f"more than {limit}: raise --limit, or narrow with --search")


def match(
    payment_id: PaymentId,
    bill: Annotated[str, typer.Argument(help="The bill's id, or its HMIS reference")],
    note: NoteOption,
) -> None:
    """Attach a payment to a bill and judge it against that bill: confirmed or mismatch."""
    _decide(lambda s: decisions.match(s, payment_id, bill, note, ACTOR))


def accept(payment_id: PaymentId, note: NoteOption) -> None:
    """Accept a mismatch: it counts as paid on its bill."""
    _decide(lambda s: decisions.accept(s, payment_id, note, ACTOR))


def dismiss(payment_id: PaymentId, note: NoteOption) -> None:
    """Dismiss an unmatched payment or a mismatch: it does not count."""
    _decide(lambda s: decisions.dismiss(s, payment_id, note, ACTOR))


def _decide(work: Callable[[AsyncSession], Awaitable[PaymentDetail]]) -> None:
    result = _run(work)
    last = result.decisions[-1]
    bill = f" (bill {escape(result.bill_id)})" if result.bill_id else ""
    console.print(
        f"payment {result.id}: {last.from_status} -> {result.status}{bill}", highlight=False
    )
    for reason in result.reasons:
        console.print(f"  {escape(reason)}", highlight=False)


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction; one line and an exit code for what it refused."""
    settings = settings_or_exit()
    try:
        return asyncio.run(_in_transaction(settings, work))
    except AppError as exc:
        codes = {404: NOT_FOUND, 409: WRONG_STATE}
        _fail(exc.detail, codes.get(exc.status_code, BAD_INPUT))
    except (DBAPIError, OSError) as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        _fail(f"the database is unavailable ({cause}); nothing was changed", DATABASE_UNAVAILABLE)


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _fail(message: str, code: int) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
