"""Queries of the bill records, including the outbox claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, Update, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.sql.elements import BindParameter

from app.billing.models import (
    NEEDS_REVIEW,
    PENDING_STATUSES,
    POSTED,
    POSTING,
    REVERSING,
    Bill,
    BillAttempt,
    PostingReference,
)
from app.platform.db import rows_parameter, utcnow

_BILLS = cast(Table, Bill.__table__)
_REFERENCES = cast(Table, PostingReference.__table__)
_INSERT_ATTEMPT = cast(Table, BillAttempt.__table__).insert()
_INSERT_IF_ABSENT = {
    name: dialect.insert(_BILLS)
    .on_conflict_do_nothing(index_elements=["bill_id"])
    .returning(_BILLS.c.bill_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


async def insert_if_absent(
    connection: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> list[bool]:
    """Insert bills (one statement) unless their id exists; for each row, whether it was
    inserted. An id that comes twice is inserted once, for its first row (HMIS calling twice at
    once); the other is a duplicate like any other.

    The statement is built once and run with parameters: building it per push was a large
    share of the push's CPU time."""
    first: dict[str, int] = {}
    for index, row in enumerate(rows):
        first.setdefault(row["bill_id"], index)
    statement = _INSERT_IF_ABSENT[connection.dialect.name]
    result = await connection.execute(statement, rows_parameter([rows[i] for i in first.values()]))
    inserted = set(result.scalars())
    fresh = [
        first[row["bill_id"]] == i and row["bill_id"] in inserted for i, row in enumerate(rows)
    ]
    references = [
        _reference_row(row["bill_id"], row["company_code"], row["document_reference_id"], POSTING)
        for row, new in zip(rows, fresh, strict=True)
        if new
    ]
    if references:  # same transaction: a bill is never recorded without its identity
        await connection.execute(_REFERENCES.insert(), rows_parameter(references))
    return fresh


def _reference_row(bill_id: str, company_code: str, reference_id: str, kind: str) -> dict:
    return {
        "reference_id": reference_id,
        "company_code": company_code,
        "bill_id": bill_id,
        "kind": kind,
        "created_at": utcnow(),
    }


async def register_reference(
    session: AsyncSession, bill_id: str, company_code: str, reference_id: str, kind: str
) -> None:
    """Record an identity before anything carrying it is sent (unique: a clash raises)."""
    connection = await session.connection()
    await connection.execute(
        _REFERENCES.insert(), _reference_row(bill_id, company_code, reference_id, kind)
    )


UPDATE = (
    update(_BILLS)
    .where(_BILLS.c.bill_id == bindparam("key_bill_id"))
    .returning(*(c for c in _BILLS.c if c.key not in ("payload", "posted_entry")))
)
#: A posting's success: a cancel that arrived while it was posting makes it a reversal owed.
UPDATE_POSTED = UPDATE.values(status=case((_BILLS.c.cancel_requested, REVERSING), else_=POSTED))


async def update_returning(
    session: AsyncSession, bill_id: str, values: dict[str, Any], statement: Any = UPDATE
) -> Bill | None:
    """Set `values` (the SET clause follows their keys) on one bill; the updated row without
    its payload and posted entry. The statement is built once: building, coercing and keying
    it per call, and the ORM's bulk-update path, cost more than the database's own work."""
    connection = await session.connection()
    row = (await connection.execute(statement, {"key_bill_id": bill_id, **values})).one_or_none()
    return None if row is None else Bill(**row._mapping)


def fenced(statement: Any) -> Any:
    """`statement` only for the attempt that holds the bill's lease (`key_lease_id`)."""
    return statement.where(_BILLS.c.lease_id == bindparam("key_lease_id"))


async def update_fenced(
    session: AsyncSession, bill_id: str, lease_id: str, values: dict[str, Any], statement: Any
) -> Bill | None:
    """Like `update_returning`, written only under the attempt's lease; None when it was lost
    (another replica took the bill over): the outcome is then that replica's to record."""
    return await update_returning(session, bill_id, {"key_lease_id": lease_id, **values}, statement)


UPDATE_FENCED = fenced(UPDATE)
UPDATE_POSTED_FENCED = fenced(UPDATE_POSTED)
#: an operator's resolve: only a bill that still needs review
UPDATE_RESOLVED = UPDATE_POSTED.where(_BILLS.c.status == NEEDS_REVIEW)
UPDATE_REVIEWED = UPDATE.where(_BILLS.c.status == NEEDS_REVIEW)


async def insert_attempt(session: AsyncSession, attempt: dict[str, Any]) -> None:
    """Add one row to a bill's attempt history: a Core insert built once, as it runs after
    every delivery attempt."""
    connection = await session.connection()
    await connection.execute(_INSERT_ATTEMPT, attempt)


async def attempts(session: AsyncSession, bill_id: str, limit: int) -> Sequence[BillAttempt]:
    """A bill's newest `limit` attempts, newest first (ix_bill_attempts_bill)."""
    statement = (
        select(BillAttempt)
        .where(BillAttempt.bill_id == bill_id)
        .order_by(BillAttempt.id.desc())
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


async def holder(
    session: AsyncSession, company_code: str, fiscal_year: str, document: str
) -> str | None:
    """The bill that holds a SAP document, as its posting or its reversal."""
    statement = select(Bill.bill_id).where(
        Bill.company_code == company_code,
        or_(
            and_(Bill.fiscal_year == fiscal_year, Bill.sap_document_number == document),
            and_(
                Bill.reversal_fiscal_year == fiscal_year,
                Bill.reversal_document_number == document,
            ),
        ),
    )
    return (await session.scalars(statement.limit(1))).first()


async def renew_lease(session: AsyncSession, bill_id: str, lease_id: str, until: datetime) -> bool:
    """Extend the attempt's lease; False when another attempt holds the bill now."""
    statement = (
        update(Bill)
        .where(Bill.bill_id == bill_id, Bill.lease_id == lease_id)
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def get(session: AsyncSession, bill_id: str) -> Bill | None:
    return await session.get(Bill, bill_id, populate_existing=True)


async def get_for_update(session: AsyncSession, bill_id: str) -> Bill | None:
    """The bill, locked until the transaction ends, as it stands after the last commit.

    PostgreSQL locks the row. SQLite has no row locks and its driver begins a transaction only
    at the first write, so a plain read could be stale by the time this transaction writes; a
    write that changes nothing comes first, taking SQLite's one write lock before the read."""
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.execute(_TOUCH, {"key_bill_id": bill_id})
        return await session.get(Bill, bill_id, populate_existing=True)
    return await session.get(Bill, bill_id, populate_existing=True, with_for_update=True)


_TOUCH = (
    update(_BILLS)
    .where(_BILLS.c.bill_id == bindparam("key_bill_id"))
    .values(bill_id=_BILLS.c.bill_id)
)


# the statuses inline, not as parameters: the planner can then prove that the partial index
# of pending bills (ix_bills_due_order) covers the claim, with a generic plan too
_PENDING: BindParameter[list[str]] = bindparam(
    "pending", list(PENDING_STATUSES), expanding=True, literal_execute=True
)


def _due(now: datetime) -> Any:
    return and_(
        Bill.status.in_(_PENDING),
        or_(Bill.next_attempt_at.is_(None), Bill.next_attempt_at <= now),
        or_(Bill.locked_until.is_(None), Bill.locked_until < now),
    )


async def claim_due(
    session: AsyncSession, now: datetime, lease_until: datetime, limit: int, lease_id: str
) -> list[str]:
    """Lease up to `limit` due bills; replicas skip each other's rows (SKIP LOCKED)."""
    statement = claim_statement(now, lease_until, limit, lease_id)
    return list((await session.scalars(statement)).all())


def claim_statement(now: datetime, lease_until: datetime, limit: int, lease_id: str) -> Update:
    """The claim: the oldest due bills, locked and leased in one statement.

    The pick is a materialized CTE: as a plain `IN (subquery)` PostgreSQL may plan a semi-join
    that runs the subquery again per outer row, each run locking the next free rows, and so
    lease every due bill at once whatever the limit.
    """
    due = (
        select(Bill.bill_id)
        .where(_due(now))
        .order_by(func.coalesce(Bill.next_attempt_at, Bill.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(Bill)
        .where(Bill.bill_id.in_(select(due.c.bill_id)), _due(now))
        .values(locked_until=lease_until, lease_id=lease_id)
        .returning(Bill.bill_id)
        .execution_options(synchronize_session=False)
    )


async def claim(
    session: AsyncSession, bill_id: str, now: datetime, lease_until: datetime, lease_id: str
) -> bool:
    """Lease one pending bill if nobody holds it (compare-and-set)."""
    statement = (
        update(Bill)
        .where(
            Bill.bill_id == bill_id,
            Bill.status.in_(PENDING_STATUSES),
            or_(Bill.locked_until.is_(None), Bill.locked_until < now),
        )
        .values(locked_until=lease_until, lease_id=lease_id)
        .execution_options(synchronize_session=False)
    )
    return bool((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def make_due_now(session: AsyncSession, now: datetime) -> int:
    """Bring forward queued bills that are only waiting out a SAP outage (not ambiguous ones)."""
    statement = (
        update(Bill)
        .where(
            Bill.status.in_(PENDING_STATUSES),
            Bill.maybe_posted.is_(False),
            Bill.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BillQuery:
    """What an operator's list asks for; every part is optional."""

    status: str | None = None
    #: exact match on an id, reference, identity or SAP document number (see `_search`)
    search: str | None = None
    #: the bill's own date (HMIS's, SAP's posting date), both ends included
    bill_date_from: date | None = None
    bill_date_to: date | None = None


async def page(
    session: AsyncSession, query: BillQuery, before: tuple[datetime, str] | None, limit: int
) -> Sequence[Bill]:
    """Bills newest first (recorded time, then bill id), after the keyset `before`; without
    their payload and entry, which a list never shows and which can be large."""
    statement = (
        select(Bill)
        .options(defer(Bill.payload), defer(Bill.posted_entry))
        .order_by(Bill.created_at.desc(), Bill.bill_id.desc())
        .limit(limit)
    )
    if query.status:
        statement = statement.where(Bill.status == query.status)
    if query.search:
        statement = statement.where(_search(query.search))
    if query.bill_date_from:
        statement = statement.where(Bill.bill_date >= query.bill_date_from)
    if query.bill_date_to:
        statement = statement.where(Bill.bill_date <= query.bill_date_to)
    if before is not None:
        created, bill_id = before
        statement = statement.where(
            or_(
                Bill.created_at < created,
                and_(Bill.created_at == created, Bill.bill_id < bill_id),
            )
        )
    return (await session.scalars(statement)).all()


def _search(text: str) -> Any:
    """Bills whose id or HMIS reference is `text`, whose posting or reversal identity is (any
    the bill was ever given, in either case), or whose SAP document number is (leading zeros
    optional)."""
    identities = {text, text.upper()}
    conditions = [
        Bill.bill_id == text,
        Bill.reference == text,
        Bill.document_reference_id.in_(identities),
        Bill.reversal_reference_id.in_(identities),
        Bill.bill_id.in_(
            select(PostingReference.bill_id).where(PostingReference.reference_id.in_(identities))
        ),
    ]
    if text.isascii() and text.isdigit() and len(text) <= 10:
        numbers = {text, text.zfill(10)}
        conditions += [
            Bill.sap_document_number.in_(numbers),
            Bill.reversal_document_number.in_(numbers),
        ]
    return or_(*conditions)
