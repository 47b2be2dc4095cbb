"""Queries of the payment inbox, the payments and the clearing runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Numeric,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.billing.models import POSTED, Bill
from app.payments.models import (
    COUNTED,
    DONE,
    FROM_SAP,
    MISMATCH,
    PENDING,
    UNMATCHED,
    ClearingRun,
    Payment,
    PaymentDecision,
    payment_key,
)
from app.payments.models import PaymentEvent as Event
from app.platform.db import rows_parameter

#: The webhook's transaction runs on a plain connection (no ORM session to build and tear
#: down per event); the inbox and payment queries below accept either.
Db = AsyncSession | AsyncConnection


def _dialect(db: Db) -> str:
    if isinstance(db, AsyncConnection):
        return db.dialect.name
    return db.bind.dialect.name if db.bind else "sqlite"


async def _connection(db: Db) -> AsyncConnection:
    return db if isinstance(db, AsyncConnection) else await db.connection()


async def _scalar(db: Db, statement: Any, values: dict[str, Any]) -> Any:
    """Run a prebuilt Core statement on the connection, past the ORM's execute path."""
    return (await (await _connection(db)).execute(statement, values)).scalar_one_or_none()


def _insert(db: Db) -> Any:
    if _dialect(db) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


def _locking(db: Db) -> bool:
    return _dialect(db) == "postgresql"


_BUILT: dict[tuple[str, str], Any] = {}


def _built(db: Db, name: str, build: Any) -> Any:
    """A statement built once per dialect; values travel as parameters, so the webhook's hot
    path neither rebuilds nor re-keys SQL for every request."""
    key = (_dialect(db), name)
    if key not in _BUILT:
        _BUILT[key] = build()
    return _BUILT[key]


# --- inbox ----------------------------------------------------------------------------------


def _insert_returning(db: Db, name: str, table: Any, conflict: list[str] | None, *keys: str) -> Any:
    return _built(
        db,
        name,
        lambda: (
            _insert(db)(table)
            .on_conflict_do_nothing(index_elements=conflict)
            .returning(*(table.c[key] for key in keys))
        ),
    )


async def insert_event(db: Db, values: dict[str, Any]) -> int | None:
    """Store an event unless any of its unique keys is known; its id, or None (duplicate)."""
    table = Event.__table__  # Core, not the ORM insert path: this is the webhook's hot path
    statement = _insert_returning(db, "insert_event", table, None, "id")
    return await _scalar(db, statement, values)


async def insert_events(db: Db, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Store payment events (one statement) unless any of their unique keys is known; the ids
    of those stored, by payment key. The caller makes the payment keys distinct."""
    statement = _insert_returning(db, "insert_events", Event.__table__, None, "payment_key", "id")
    result = await (await _connection(db)).execute(statement, rows_parameter(_same_keys(rows)))
    return {key: event_id for key, event_id in result.all()}


def _same_keys(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows written by one multi-row statement need the same columns; absent ones are NULL."""
    columns = sorted({column for row in rows for column in row})  # one SQL text per shape
    return [{column: row.get(column) for column in columns} for row in rows]


async def get_event(session: AsyncSession, event_id: int) -> Event | None:
    return await session.get(Event, event_id, populate_existing=True)


async def claim_event(session: AsyncSession, event_id: int, now: datetime, until: datetime) -> bool:
    """Lease a pending event for resolution; False when done or leased elsewhere."""
    statement = (
        update(Event)
        .where(
            Event.id == event_id,
            Event.status == PENDING,
            or_(Event.locked_until.is_(None), Event.locked_until < now),
        )
        .values(locked_until=until, attempts=Event.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish_event(db: Db, event_id: int, outcome: str, now: datetime) -> None:
    await (await _connection(db)).execute(
        update(Event)
        .where(Event.id == event_id)
        .values(status=DONE, outcome=outcome, resolved_at=now, locked_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def postpone_event(
    session: AsyncSession, event_id: int, error: str, next_attempt_at: datetime
) -> None:
    await session.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(last_error=error, next_attempt_at=next_attempt_at, locked_until=None)
        .execution_options(synchronize_session=False)
    )


async def due_events(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Pending events whose retry time has come, oldest first."""
    statement = (
        select(Event.id)
        .where(
            Event.status == PENDING,
            or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
            or_(Event.locked_until.is_(None), Event.locked_until < now),
        )
        .order_by(Event.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def prune_events(session: AsyncSession, before: datetime) -> int:
    """Forget resolved events received before `before` (payments keep their own key)."""
    result = await session.execute(
        delete(Event).where(Event.status == DONE, Event.received_at < before)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- bills as payments see them -------------------------------------------------------------


def _paid() -> Any:
    """What counts as paid on a bill: its confirmed and accepted payments."""
    return (
        select(func.coalesce(func.sum(Payment.amount), 0))
        .where(Payment.bill_id == Bill.bill_id, Payment.status.in_(COUNTED))
        .scalar_subquery()
        .cast(Numeric(22, 6))
    )


_BILL_COLUMNS = (
    Bill.bill_id,
    Bill.reference,
    Bill.status,
    Bill.currency,
    Bill.net_total,
    Bill.sap_document_number,
    Bill.created_at,
)


async def bills_by_reference(
    db: Db, references: Iterable[str]
) -> dict[str, list[tuple[Any, Decimal]]]:
    """Bills (the columns payments judge by) with their paid amount, newest first
    for each reference. Locked on PostgreSQL, in reference order so that concurrent batches
    never wait for each other in a circle, and payments of one bill are judged in turn.

    On PostgreSQL the paid amounts are read by a second statement, once the locks are held: a
    statement reads the snapshot taken when it started, so a sum read by the statement that
    waited for the lock would miss the payments of the transaction it waited for, and two
    full payments of one bill would both be confirmed."""
    connection = await _connection(db)  # Core statements: past the ORM's execute path
    values = {"references": sorted(references)}
    found: dict[str, list[tuple[Any, Decimal]]] = {}
    if not _locking(db):
        for row in await connection.execute(_built(db, "bills_by_reference", _bills_paid), values):
            found.setdefault(row.reference, []).append((row, Decimal(row.paid or 0)))
        return found
    rows = list(
        await connection.execute(_built(db, "lock_bills_by_reference", _lock_bills), values)
    )
    paid: dict[str, Decimal] = {}
    if rows:
        statement = _built(db, "paid_by_bill", _paid_by_bill)
        sums = await connection.execute(statement, {"bill_ids": [row.bill_id for row in rows]})
        paid = {bill_id: Decimal(amount or 0) for bill_id, amount in sums}
    for row in rows:
        found.setdefault(row.reference, []).append((row, paid.get(row.bill_id, Decimal(0))))
    return found


def _by_reference(statement: Any) -> Select[Any]:
    return statement.where(Bill.reference.in_(bindparam("references", expanding=True))).order_by(
        Bill.reference, Bill.created_at.desc(), Bill.bill_id
    )


def _bills_paid() -> Select[Any]:
    return _by_reference(select(*_BILL_COLUMNS, _paid().label("paid")))


def _lock_bills() -> Select[Any]:
    return _by_reference(select(*_BILL_COLUMNS)).with_for_update(of=Bill)


def _paid_by_bill() -> Any:
    return (
        select(Payment.bill_id, func.sum(Payment.amount))
        .where(
            Payment.bill_id.in_(bindparam("bill_ids", expanding=True)),
            Payment.status.in_(COUNTED),
        )
        .group_by(Payment.bill_id)
    )


async def open_bills(session: AsyncSession) -> list[tuple[Bill, Decimal]]:
    """Posted bills with a positive total and a SAP document that are not fully paid."""
    paid = _paid()
    statement = (
        select(Bill, paid)
        .where(
            Bill.status == POSTED,
            Bill.net_total > 0,
            Bill.sap_document_number.is_not(None),
            paid < Bill.net_total,
        )
        .order_by(Bill.bill_id)
    )
    rows = (await session.execute(statement)).all()
    return [(bill, Decimal(p or 0)) for bill, p in rows]


async def recently_settled_bills(session: AsyncSession, since: datetime) -> list[Bill]:
    """Posted bills paid in full with a payment SAP reported (clearing sync or business event)
    recorded since `since`: checked again in case SAP has reversed that payment."""
    paid = _paid()
    from_sap = (
        select(Payment.id)
        .where(
            Payment.bill_id == Bill.bill_id,
            Payment.status.in_(COUNTED),
            Payment.source.in_(FROM_SAP),
            Payment.created_at >= since,
        )
        .exists()
    )
    statement = (
        select(Bill)
        .where(Bill.status == POSTED, Bill.net_total > 0, paid >= Bill.net_total, from_sap)
        .order_by(Bill.bill_id)
    )
    return list((await session.scalars(statement)).all())


async def bills_by_documents(
    session: AsyncSession, keys: Iterable[tuple[str, str, str]]
) -> list[Bill]:
    """Posted bills whose SAP document is one of (company code, fiscal year, document)."""
    wanted = list(keys)
    if not wanted:
        return []
    statement = select(Bill).where(
        Bill.status == POSTED,
        tuple_(Bill.company_code, Bill.fiscal_year, Bill.sap_document_number).in_(wanted),
    )
    return list((await session.scalars(statement)).all())


# --- payments -------------------------------------------------------------------------------


async def insert_payments(db: Db, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Record payments (one statement) unless the SAP payment document is known for the bill
    reference; the payment keys (company/document/year/reference) of those recorded."""
    table = Payment.__table__
    statement = _insert_returning(
        db,
        "insert_payments",
        table,
        ["company_code", "payment_document", "payment_fiscal_year", "bill_reference"],
        "company_code",
        "payment_document",
        "payment_fiscal_year",
        "bill_reference",
    )
    result = await (await _connection(db)).execute(statement, rows_parameter(rows))
    return {payment_key(*row) for row in result.all()}


async def payments_by_key(db: Db, keys: Iterable[tuple[str, str, str, str]]) -> list[Any]:
    """Stored payments by (company code, payment document, fiscal year, bill reference)."""
    columns = (
        Payment.company_code,
        Payment.payment_document,
        Payment.payment_fiscal_year,
        Payment.bill_reference,
    )
    statement = select(Payment.id, *columns, Payment.amount, Payment.currency, Payment.reasons)
    statement = statement.where(tuple_(*columns).in_(list(keys)))
    return list((await (await _connection(db)).execute(statement)).all())


async def flag_payment(db: Db, payment_id: int, reasons: list[str], now: datetime) -> None:
    """Mark a stored payment `mismatch` (no longer counted as paid) with these reasons."""
    statement = (
        update(Payment)
        .where(Payment.id == payment_id)
        .values(status=MISMATCH, reasons=reasons, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await (await _connection(db)).execute(statement)


async def for_bill(session: AsyncSession, bill_id: str) -> list[Payment]:
    """The payments recorded against one bill, oldest first."""
    statement = select(Payment).where(Payment.bill_id == bill_id).order_by(Payment.id)
    return list((await session.scalars(statement)).all())


async def for_bills(session: AsyncSession, bill_ids: Sequence[str]) -> dict[str, list[Payment]]:
    """Payments of several bills, by bill id."""
    found: dict[str, list[Payment]] = {bill_id: [] for bill_id in bill_ids}
    if not bill_ids:
        return found
    statement = select(Payment).where(Payment.bill_id.in_(bill_ids)).order_by(Payment.id)
    for payment in (await session.scalars(statement)).all():
        found[payment.bill_id or ""].append(payment)
    return found


async def unmatched_for_reference(session: AsyncSession, reference: str) -> list[Payment]:
    statement = (
        select(Payment)
        .where(Payment.status == UNMATCHED, Payment.bill_reference == reference)
        .order_by(Payment.id)
    )
    if _locking(session):
        statement = statement.with_for_update()
    return list((await session.scalars(statement)).all())


_PAYMENTS = cast(Table, Payment.__table__)
_HAS_UNMATCHED = (
    select(_PAYMENTS.c.id)
    .where(_PAYMENTS.c.status == UNMATCHED, _PAYMENTS.c.bill_reference == bindparam("reference"))
    .limit(1)
)


async def has_unmatched(db: Db, reference: str) -> bool:
    """Whether payments wait for this bill; asked after every posting, so built once."""
    return await _scalar(db, _HAS_UNMATCHED, {"reference": reference}) is not None


async def rematchable_references(session: AsyncSession, limit: int) -> list[str]:
    """References of unmatched payments for which a posted bill now exists."""
    statement = (
        select(Payment.bill_reference)
        .join(Bill, and_(Bill.reference == Payment.bill_reference, Bill.status == POSTED))
        .where(Payment.status == UNMATCHED)
        .distinct()
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def payments_in(session: AsyncSession, statuses: Sequence[str]) -> list[Payment]:
    """Every payment in these states (unmatched and mismatches: few, kept for operators)."""
    statement = select(Payment).where(Payment.status.in_(statuses)).order_by(Payment.id)
    return list((await session.scalars(statement)).all())


async def posted_bills_between(
    session: AsyncSession, start: date | None, end: date
) -> list[tuple[Bill, Decimal]]:
    """Posted bills (bill date in range) with their paid amount (confirmed and accepted)."""
    statement = select(Bill, _paid()).where(Bill.status == POSTED, Bill.bill_date <= end)
    if start is not None:
        statement = statement.where(Bill.bill_date >= start)
    rows = (await session.execute(statement.order_by(Bill.bill_date, Bill.bill_id))).all()
    return [(bill, Decimal(p or 0)) for bill, p in rows]


# --- operators' decisions ------------------------------------------------------------------


async def get_payment(session: AsyncSession, payment_id: int) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


async def page_payments(
    session: AsyncSession, status: str | None, q: str | None, before: int | None, limit: int
) -> list[Payment]:
    """Payments newest first (by id), below `before`, in `status`, whose bill reference,
    payment document or bill id contains `q` (any case)."""
    statement = select(Payment).order_by(Payment.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(Payment.status == status)
    if before is not None:
        statement = statement.where(Payment.id < before)
    if q:
        wanted = q.lower()
        columns = (Payment.bill_reference, Payment.payment_document, Payment.bill_id)
        statement = statement.where(
            or_(*(func.lower(c).contains(wanted, autoescape=True) for c in columns))
        )
    return list((await session.scalars(statement)).all())


async def decisions_of(session: AsyncSession, payment_id: int) -> list[PaymentDecision]:
    """A payment's audit trail, oldest first."""
    statement = (
        select(PaymentDecision)
        .where(PaymentDecision.payment_id == payment_id)
        .order_by(PaymentDecision.id)
    )
    return list((await session.scalars(statement)).all())


async def bills_with_reference(session: AsyncSession, reference: str) -> list[Bill]:
    """Bills carrying an HMIS reference, newest first."""
    statement = (
        select(Bill)
        .where(Bill.reference == reference)
        .order_by(Bill.created_at.desc(), Bill.bill_id)
    )
    return list((await session.scalars(statement)).all())


async def paid_on(session: AsyncSession, bill_id: str) -> Decimal:
    """What counts as paid on one bill now. Read in its own statement after the bill's lock
    is held, so that it sees every payment committed by whoever held the lock before."""
    statement = select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.bill_id == bill_id, Payment.status.in_(COUNTED)
    )
    return Decimal((await session.scalar(statement)) or 0)


async def change_payment(session: AsyncSession, payment: Payment, values: dict[str, Any]) -> bool:
    """Write a decision's outcome only if the payment is still as it was read (status and
    `updated_at`, which every change of a payment sets); False when something changed it
    meanwhile. On PostgreSQL the UPDATE waits for a concurrent one and then checks again."""
    statement = (
        update(Payment)
        .where(
            Payment.id == payment.id,
            Payment.status == payment.status,
            Payment.updated_at == payment.updated_at,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def current_status(session: AsyncSession, payment_id: int) -> str | None:
    return await session.scalar(select(Payment.status).where(Payment.id == payment_id))


# --- clearing runs --------------------------------------------------------------------------


async def start_run(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Record a run; None when its cron slot already has one (another replica ran it)."""
    insert = _insert(session)
    statement = (
        insert(ClearingRun).values(**values).on_conflict_do_nothing().returning(ClearingRun.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def finish_run(session: AsyncSession, run_id: int, values: dict[str, Any]) -> None:
    await session.execute(
        update(ClearingRun)
        .where(ClearingRun.id == run_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
