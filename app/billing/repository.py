"""Queries of the bill records, including the outbox claim."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Update, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app.billing.models import PENDING_STATUSES, POSTED, REJECTED, REVERSING, Bill
from app.db import rows_parameter

_BILLS = cast(Table, Bill.__table__)
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
    return [first[row["bill_id"]] == i and row["bill_id"] in inserted for i, row in enumerate(rows)]


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


async def requeue_rejected(session: AsyncSession, bill_id: str, values: dict[str, Any]) -> bool:
    """Set `values` on the bill only if it is rejected (compare-and-set); True when it was."""
    return await update_returning(session, bill_id, values, _REQUEUE_REJECTED) is not None


_REQUEUE_REJECTED = UPDATE.where(_BILLS.c.status == REJECTED)


async def get(session: AsyncSession, bill_id: str) -> Bill | None:
    return await session.get(Bill, bill_id, populate_existing=True)


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
    session: AsyncSession, now: datetime, lease_until: datetime, limit: int
) -> list[str]:
    """Lease up to `limit` due bills; replicas skip each other's rows (SKIP LOCKED)."""
    return list((await session.scalars(claim_statement(now, lease_until, limit))).all())


def claim_statement(now: datetime, lease_until: datetime, limit: int) -> Update:
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
        .values(locked_until=lease_until)
        .returning(Bill.bill_id)
        .execution_options(synchronize_session=False)
    )


async def claim(session: AsyncSession, bill_id: str, now: datetime, lease_until: datetime) -> bool:
    """Lease one pending bill if nobody holds it (compare-and-set)."""
    statement = (
        update(Bill)
        .where(
            Bill.bill_id == bill_id,
            Bill.status.in_(PENDING_STATUSES),
            or_(Bill.locked_until.is_(None), Bill.locked_until < now),
        )
        .values(locked_until=lease_until)
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


async def page(
    session: AsyncSession, status: str | None, after: str | None, limit: int
) -> Sequence[Bill]:
    query = select(Bill).order_by(Bill.bill_id).limit(limit)
    if status:
        query = query.where(Bill.status == status)
    if after:
        query = query.where(Bill.bill_id > after)
    return (await session.scalars(query)).all()
