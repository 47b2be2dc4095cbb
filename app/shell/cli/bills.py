"""`bridge bills list|show|retry|resolve|cancel`: an operator's view of the bills, and the
actions of `POST /bills/{id}/retry|resolve|cancel` through the routes' own service functions.

Registered on the `bills` group by `register`. Every failure is one line and an exit code:
1 the database or SAP could not be reached, SAP rejected the bill again or it needs review
again (or a cancel was not confirmed); 2 bad input; 3 the bill is in the wrong state for the
action, or the integration or its settings do not allow it; 4 no such bill.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, NoReturn, TypeVar

import structlog
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from app.billing import service
from app.billing.cli import BAD_INPUT, lines_table
from app.billing.runtime import BillingRuntime
from app.billing.schemas import PATH_BILL_ID, BillPage, BillView, ResolveIn
from app.platform import logging as applog
from app.platform.errors import AppError
from app.platform.settings import Settings
from app.shell.runtime import StartupError, build_runtime, close_runtime, load_settings

FAILED, CONFLICT, NOT_FOUND = 1, 3, 4
_CODES = {400: BAD_INPUT, 404: NOT_FOUND, 409: CONFLICT, 422: BAD_INPUT}
#: the route's parameter names as this command's options, in messages
_OPTIONS = {
    "status": "--status",
    "q": "--search",
    "from": "--from",
    "to": "--to",
    "cursor": "--cursor",
    "company_code": "--company-code",
    "fiscal_year": "--fiscal-year",
    "sap_document_number": "--document",
    "note": "--note",
}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: what `bills list` and `bills show` print with: wide enough for a row in a pipe too
_WIDTH = 140

console = Console()
T = TypeVar("T")


class Failed(Exception):
    """One line saying what went wrong, and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def register(bills_app: typer.Typer) -> None:
    """Add the operator's commands to the `bridge bills` group."""
    bills_app.command("list")(list_bills)
    bills_app.command("show")(show_bill)
    bills_app.command("retry")(retry_bill)
    bills_app.command("resolve")(resolve_bill)
    bills_app.command("cancel")(cancel_bill)


BillIdArgument = Annotated[str, typer.Argument(help="The HMIS bill id")]


def list_bills(
    status: Annotated[
        str | None, typer.Option(help="queued, posted, rejected, needs_review, reversing, ...")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(help="Bill id, HMIS reference, DocumentReferenceID or SAP document (exact)"),
    ] = None,
    from_date: Annotated[
        str | None, typer.Option("--from", help="YYYY-MM-DD: bill date on or after")
    ] = None,
    to_date: Annotated[
        str | None, typer.Option("--to", help="YYYY-MM-DD: bill date on or before")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows, 1-200")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue where a page ended")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON of GET /bills instead")
    ] = False,
) -> None:
    """Bills newest first, as GET /bills lists them."""
    if not 1 <= limit <= 200:
        _exit(Failed(f"--limit: 1-200, got {limit}", BAD_INPUT))
    try:
        query = service.bill_query(
            status, search, _date("--from", from_date), _date("--to", to_date)
        )
    except (AppError, Failed) as exc:
        _exit(exc)

    async def run(runtime: BillingRuntime) -> BillPage:
        async with runtime.sessions() as session:
            return await service.list_bills(runtime, session, query, cursor, limit)

    page = _run(run)
    if as_json:
        print(_json(page))
        return
    _print_page(page, status=status, search=search, limit=limit, dates=(from_date, to_date))


def show_bill(
    bill_id: BillIdArgument,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON of GET /bills/{bill_id} instead")
    ] = False,
) -> None:
    """A bill's whole record: status, SAP documents, attempts, the lines sent, payments."""
    _check_bill_id(bill_id)

    async def run(runtime: BillingRuntime) -> BillView:
        async with runtime.sessions() as session:
            return await service.get(runtime, session, bill_id)

    view = _run(run)
    if as_json:
        print(_json(view))
        return
    _print_bill(view)


def retry_bill(bill_id: BillIdArgument) -> None:
    """Send a rejected bill again (its cause fixed), or one that needed review once SAP is
    known to hold nothing for it (under a new identity), as POST /bills/{id}/retry does."""
    _check_bill_id(bill_id)

    async def run(runtime: BillingRuntime) -> service.Answer:
        config = await runtime.config.snapshot(runtime.sessions)
        return await service.retry(runtime, config, bill_id)

    _report(_run(run).view)


def resolve_bill(
    bill_id: BillIdArgument,
    company_code: Annotated[str, typer.Option(help="SAP company code of the document")],
    fiscal_year: Annotated[str, typer.Option(help="Its fiscal year, 4 digits")],
    document: Annotated[str, typer.Option(help="The SAP document number")],
    note: Annotated[str, typer.Option(help="Why it is this bill's (kept with the bill)")],
) -> None:
    """Record the SAP document of a bill that needs review, once SAP shows its lines equal the
    bill's, as POST /bills/{id}/resolve does."""
    _check_bill_id(bill_id)
    try:
        body = ResolveIn(
            company_code=company_code,
            fiscal_year=fiscal_year,
            sap_document_number=document,
            note=note,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "body"
        _exit(Failed(f"{_OPTIONS.get(name, name)}: {first['msg']}", BAD_INPUT))

    async def run(runtime: BillingRuntime) -> service.Answer:
        config = await runtime.config.snapshot(runtime.sessions)
        return await service.resolve(runtime, config, bill_id, body)

    _report(_run(run).view)


def cancel_bill(
    bill_id: BillIdArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Reverse a posted bill in SAP (or withdraw one SAP never got), as POST
    /bills/{id}/cancel does. Asks first unless --yes."""
    _check_bill_id(bill_id)

    async def current(runtime: BillingRuntime) -> BillView:
        async with runtime.sessions() as session:
            return await service.get(runtime, session, bill_id)

    before = _run(current)
    if not yes and before.status not in ("reversed", "withdrawn"):
        what = {
            "posted": f"post a reversing entry in SAP for document {_document(before)}",
            "reversing": "its reversal is already owed to SAP",
            "needs_review": "the cancel is carried out once the bill is resolved",
        }.get(before.status, "withdraw it: SAP holds no posting of it (one in flight is reversed)")
        question = f"Cancel bill {bill_id} ({before.status}, reference {before.reference}): {what}?"
        try:
            confirmed = typer.confirm(question, default=False)
        except typer.Abort:  # no answer (end of input, ^C): the prompt's line ends
            console.print()
            confirmed = False
        if not confirmed:
            _exit(Failed(f"bill {bill_id} was not cancelled (confirm, or pass --yes)", FAILED))

    async def run(runtime: BillingRuntime) -> service.Answer:
        config = await runtime.config.snapshot(runtime.sessions)
        return await service.cancel(runtime, config, bill_id)

    _report(_run(run).view, cancelling=True)


# --- running ------------------------------------------------------------------------------


class _NextPoll:
    """The outbox of a command: the service's own outbox delivers what is owed at its next
    poll (`BRIDGE_OUTBOX_POLL_SECONDS`)."""

    def wake(self) -> None:
        return None


@asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[BillingRuntime]:
    runtime = build_runtime(settings)  # like the service's: retry, resolve and cancel call SAP
    runtime.extras["outbox"] = _NextPoll()
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


def _run(work: Callable[[BillingRuntime], Awaitable[T]]) -> T:
    """`work` on a runtime of its own; a failure is one line and its exit code."""
    settings = _settings()

    async def run() -> T:
        async with _runtime(settings) as runtime:
            try:
                return await work(runtime)
            except (SQLAlchemyError, OSError):
                # aiosqlite stops a failed connection's thread without waiting for it; a loop
                # closed under that thread makes it print a traceback
                await asyncio.sleep(0.1)
                raise

    try:
        return asyncio.run(run())
    except AppError as exc:
        _exit(exc)
    except (SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        cause = cause.__cause__ or cause  # the driver's own error, not SQLAlchemy's adapter
        reason = (str(cause).strip().splitlines() or [""])[0]
        _exit(Failed(f"cannot reach the database ({type(cause).__name__}: {reason})", FAILED))


def _settings() -> Settings:
    try:
        settings = load_settings()
    except StartupError as exc:
        _exit(Failed(str(exc), BAD_INPUT))
    if not structlog.is_configured():  # the bridge's events on stderr, not amid the output
        applog.configure(settings.log_format, level=logging.WARNING)
    return settings


def _exit(failure: AppError | Failed) -> NoReturn:
    if isinstance(failure, AppError):
        message, code = failure.detail, _CODES.get(failure.status_code, FAILED)
        field = failure.extra.get("field")
        if isinstance(field, str) and field in _OPTIONS and message.startswith(f"{field}:"):
            message = _OPTIONS[field] + message[len(field) :]
    else:
        message, code = str(failure), failure.code
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _check_bill_id(bill_id: str) -> None:
    if not (re.fullmatch(PATH_BILL_ID, bill_id) and len(bill_id) <= 64):
        _exit(Failed("BILL_ID: 1-64 letters, digits or . _ : - as in the push's path", BAD_INPUT))


def _date(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise Failed(f"{option}: must be a date written YYYY-MM-DD, got {text!r}", BAD_INPUT)


# --- what is printed ----------------------------------------------------------------------


def _json(model: BillPage | BillView) -> str:
    """What the route answers: `GET /bills/{bill_id}` or `GET /bills`."""
    if isinstance(model, BillView):
        data = model.as_json()
    else:
        data = model.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, indent=2, ensure_ascii=False)


def _document(view: BillView, *, reversal: bool = False) -> str:
    """`0100000042 (company code 1000, fiscal year 2024)`, or `-`."""
    number = view.reversal_document_number if reversal else view.sap_document_number
    year = view.reversal_fiscal_year if reversal else view.fiscal_year
    if not number:
        return "-"
    return f"{number} (company code {view.company_code}, fiscal year {year})"


def _report(view: BillView, *, cancelling: bool = False) -> None:
    """What an action left the bill as: one line, and its exit code."""
    bill, status = view.bill_id or "", str(view.status)
    if status == "already_reversed":  # a second cancel: say what the first one did
        status = view.record_status or status
    if status in ("posted", "already_pushed"):
        _say(f"{bill}: posted as SAP document {_document(view)}")
    elif status in ("reversed", "already_reversed"):
        _say(f"{bill}: reversed by SAP document {_document(view, reversal=True)}")
    elif status == "withdrawn":
        _say(f"{bill}: withdrawn; SAP never had it")
    elif status in ("queued", "reversing"):
        owed = "posting" if status == "queued" else "reversal"
        why = f" ({view.last_error})" if view.last_error else ""
        _say(f"{bill}: {status}{why}; the service delivers the {owed} in the background")
    elif status == "needs_review" and cancelling:
        _say(f"{bill}: needs review; the cancel is carried out once it is resolved")
    elif status == "skipped":
        _exit(Failed(f"SAP integration is disabled; bill {bill} was left as it is", CONFLICT))
    elif status == "rejected":
        _exit(Failed(f"{bill}: {view.detail or 'SAP rejected the journal entry'}", FAILED))
    else:
        _exit(Failed(f"{bill}: {status}: {view.last_error or 'see bridge bills show'}", FAILED))


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _cell(value: object) -> Text:
    return Text("-" if value is None or value == "" else str(value))


def _print_page(
    page: BillPage,
    *,
    status: str | None,
    search: str | None,
    limit: int,
    dates: tuple[str | None, str | None],
) -> None:
    if not page.items:
        _say("no bills match")
        return
    rows = [
        [
            view.bill_id,
            view.reference,
            view.record_status,
            f"{view.net_total} {view.currency}",
            view.bill_date,
            (
                f"{view.company_code}/{view.fiscal_year}/{view.sap_document_number}"
                if view.sap_document_number
                else None
            ),
            view.attempts,
            view.created_at.strftime("%Y-%m-%d %H:%M:%S") if view.created_at else None,
            view.last_error,
        ]
        for view in page.items
    ]
    headers = (
        *("bill", "reference", "status", "net total", "bill date", "SAP document"),
        *("attempts", "recorded", "last error"),
    )
    table = Table(title="bills, newest first")
    # every column but the error shown whole: the error takes what room is left, cut short
    fixed = 0
    for index, header in enumerate(headers[:-1]):
        width = max(len(header), *(len(_cell(row[index])) for row in rows))
        fixed += width + 3
        right = header in ("net total", "attempts")
        table.add_column(
            header, no_wrap=True, min_width=width, justify="right" if right else "left"
        )
    width = max(console.width, _WIDTH, fixed + 16)
    room = width - fixed - 4  # the borders of the table and of the error's column
    table.add_column(headers[-1], no_wrap=True, overflow="ellipsis", max_width=room)
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    Console(width=width).print(table)
    if page.next_cursor:
        again = [f"--limit {limit}"]
        for option, value in (
            ("--status", status),
            ("--search", search),
            ("--from", dates[0]),
            ("--to", dates[1]),
        ):
            if value:
                again.append(f"{option} {value!r}" if " " in value else f"{option} {value}")
        _say(f"more: bridge bills list {' '.join(again)} --cursor {page.next_cursor}")


def _print_bill(view: BillView) -> None:
    wide = Console(width=max(console.width, _WIDTH))
    record = Table(title=f"bill {view.bill_id}", show_header=False)
    record.add_column("field", no_wrap=True)
    record.add_column("value", overflow="fold")
    paid = f"{view.paid_amount} paid, {view.outstanding_amount} outstanding"
    for label, value in (
        ("status", view.record_status),
        ("reference (HMIS)", view.reference),
        ("DocumentReferenceID", view.document_reference_id),
        ("bill date", view.bill_date),
        ("net total", f"{view.net_total} {view.currency}"),
        ("payments", paid),
        ("SAP document", _document(view)),
        ("reversal identity", view.reversal_reference_id),
        ("reversal document", _document(view, reversal=True)),
        ("recorded / updated", f"{_time(view.created_at)} / {_time(view.updated_at)}"),
        ("posted", _time(view.posted_at)),
        ("attempts", view.attempts),
        ("last sent", _time(view.last_sent_at)),
        ("next attempt", _time(view.next_attempt_at)),
        ("may have reached SAP", "yes" if view.maybe_posted else "no"),
        ("read-backs", view.read_backs),
        ("cancel requested", "yes" if view.cancel_requested else "no"),
        ("last error", view.last_error),
        ("resolution note", view.resolution_note),
    ):
        record.add_row(label, _cell(value))
    wide.print(record)
    if view.messages:
        messages = Table(title="SAP's messages of the last answer")
        for column in ("type", "severity", "message"):
            messages.add_column(column, overflow="fold")
        for message in view.messages:
            messages.add_row(
                _cell(message.get("type_id")),
                _cell(message.get("severity")),
                _cell(message.get("note")),
            )
        wide.print(messages)
    if view.entry is not None:
        title = f"lines sent (DocumentReferenceID {view.entry.document_reference_id})"
        wide.print(lines_table(view.entry.lines, title=title))
    else:
        _say("lines: not built yet (the settings were incomplete, or a retry rebuilds them)")
    if view.payments:
        payments = Table(title="payments")
        for column in ("payment document", "amount", "posting date", "status", "source"):
            payments.add_column(column, no_wrap=True)
        payments.add_column("reasons", overflow="fold")
        for p in view.payments:
            payments.add_row(
                _cell(p.payment_document),
                _cell(f"{p.amount} {p.currency}"),
                _cell(p.posting_date),
                _cell(p.status),
                _cell(p.source),
                _cell("; ".join(p.reasons or [])),
            )
        wide.print(payments)
    else:
        _say("payments: none recorded")


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"
