"""The bill push record; it is also the outbox row the delivery worker drains."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db import Base, UTCDateTime, utcnow

QUEUED, POSTED, REJECTED = "queued", "posted", "rejected"
REVERSING, REVERSED, WITHDRAWN = "reversing", "reversed", "withdrawn"
NEEDS_REVIEW = "needs_review"
PENDING_STATUSES = (QUEUED, REVERSING)
#: postings and reversals, the two kinds of SAP document a bill can hold
POSTING, REVERSAL = "posting", "reversal"

_ID = BigInteger().with_variant(Integer, "sqlite")


class Bill(Base):
    """One HMIS bill and where it stands with SAP.

    `status` `queued` means a posting is owed to SAP, `reversing` a reversal is owed.
    `maybe_posted` is set before each send and cleared only on a definite answer, so a crash
    or timeout makes the next attempt read SAP back before sending again. `needs_review`: SAP
    may hold a document for the bill that the bridge cannot safely recognise; only an operator
    moves it on (resolve or retry).

    An attempt owns the bill while `lease_id` is its own and `locked_until` is ahead; it renews
    the lease while it runs and writes its outcome only under that lease.
    """

    __tablename__ = "bills"
    __table_args__ = (
        Index("ix_bills_due", "status", "next_attempt_at"),
        # the operators' list: newest recorded first, by status, and its search by document
        Index("ix_bills_listed", "created_at", "bill_id"),
        Index("ix_bills_listed_by_status", "status", "created_at", "bill_id"),
        Index("ix_bills_sap_document", "sap_document_number"),
        Index("ix_bills_reversal_document", "reversal_document_number"),
        # no SAP document is held by two bills (NULLs, i.e. no document yet, do not count)
        Index(
            "uq_bills_document",
            "company_code",
            "fiscal_year",
            "sap_document_number",
            unique=True,
        ),
        Index(
            "uq_bills_reversal_document",
            "company_code",
            "reversal_fiscal_year",
            "reversal_document_number",
            unique=True,
        ),
    )

    bill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), index=True)
    bill_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    net_total: Mapped[Decimal] = mapped_column(Numeric(22, 6))
    fingerprint: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    company_code: Mapped[str] = mapped_column(String(4))
    document_reference_id: Mapped[str] = mapped_column(String(16))
    sap_document_number: Mapped[str | None] = mapped_column(String(10))
    fiscal_year: Mapped[str | None] = mapped_column(String(4))
    reversal_reference_id: Mapped[str | None] = mapped_column(String(16))
    reversal_document_number: Mapped[str | None] = mapped_column(String(10))
    reversal_fiscal_year: Mapped[str | None] = mapped_column(String(4))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sap_messages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    maybe_posted: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the journal entry of the posting, stored before it is first sent: every attempt sends
    #: it, a read-back recognises a document only by its lines, and a reversal mirrors it
    posted_entry: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lease_id: Mapped[str | None] = mapped_column(String(32))
    #: when the owed posting or reversal was last sent: SAP may work on it until the settle time
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: read-backs that found nothing for the owed posting or reversal since it was last settled
    read_backs: Mapped[int] = mapped_column(Integer, default=0)
    #: an operator's note when resolving or retrying a bill that needed review
    resolution_note: Mapped[str | None] = mapped_column(Text)


class PostingReference(Base):
    """Every DocumentReferenceID the bridge has given a posting or reversal: the primary key
    keeps them unique, whatever HMIS sends as its own reference."""

    __tablename__ = "posting_references"

    reference_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    company_code: Mapped[str] = mapped_column(String(4))
    bill_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillAttempt(Base):
    """One delivery attempt of a bill as it ended: its kind, outcome, SAP's answer, the error.

    Written by the attempt right after its outcome landed on the bill under its lease (an
    attempt that lost its lease writes none); history for operators, nothing decides by it.
    No foreign key: the delivery's hot path takes no key-share lock on the bill for it.
    """

    __tablename__ = "bill_attempts"
    __table_args__ = (Index("ix_bill_attempts_bill", "bill_id", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    bill_id: Mapped[str] = mapped_column(String(64))
    #: `posting` or `reversal`
    kind: Mapped[str] = mapped_column(String(8))
    #: what the attempt recorded: posted, rejected, deferred, ambiguous, needs_review, withdrawn
    outcome: Mapped[str] = mapped_column(String(16))
    #: the bill's `sent_at` as the attempt left it: when what it owed was last sent
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the posting's or reversal's SAP document, when the attempt got one
    sap_document_number: Mapped[str | None] = mapped_column(String(10))
    error: Mapped[str | None] = mapped_column(Text)
    sap_messages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


#: the outbox claim's order, over pending bills only (migration 0006)
Index(
    "ix_bills_due_order",
    func.coalesce(Bill.next_attempt_at, Bill.created_at),
    postgresql_where=Bill.status.in_(PENDING_STATUSES),
    sqlite_where=Bill.status.in_(PENDING_STATUSES),
)
