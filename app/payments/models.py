"""The payment inbox, the payments recorded against bills, and clearing-sync runs.

Exactly once rests on two unique keys:

* `payment_events` (the inbox) is unique on each way the same event can come back: the
  Standard Webhooks `webhook-id`, the CloudEvents `source`+`id`, and the payment key
  `company/paymentDocument/fiscalYear/billReference`. The clearing sync writes its findings
  with the same payment key, so a webhook after the sync (or the sync after a webhook) is a
  duplicate.
* `payments` is unique on `(company_code, payment_document, payment_fiscal_year,
  bill_reference)`: one row per SAP payment document per bill, whichever path reported it
  first. SAP numbers payment documents per fiscal year, so the year is part of the key.

`payment_decisions` is the audit trail of what operators decided about a payment (match,
accept, dismiss), written in the transaction that changes the payment's status.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db import Base, UTCDateTime, utcnow

# inbox kinds and states
PAYMENT, BUSINESS_EVENT, CLEARING = "payment", "business_event", "clearing"
PENDING, DONE = "pending", "done"
# payment states
CONFIRMED, MISMATCH, UNMATCHED = "confirmed", "mismatch", "unmatched"
#: an operator's decisions: a mismatch that counts as paid, a payment that does not count
ACCEPTED, DISMISSED = "accepted", "dismissed"
STATUSES = (UNMATCHED, MISMATCH, CONFIRMED, ACCEPTED, DISMISSED)
#: the payments that count towards a bill's paid amount
COUNTED = (CONFIRMED, ACCEPTED)
# what an operator can decide about a payment
MATCH, ACCEPT, DISMISS = "match", "accept", "dismiss"
# where a payment came from
SOURCE_WEBHOOK, SOURCE_EVENT, SOURCE_SYNC = "webhook", "business_event", "clearing_sync"
#: payments SAP itself reported (not HMIS's webhook), which SAP can later stop showing
FROM_SAP = (SOURCE_SYNC, SOURCE_EVENT)

_ID = BigInteger().with_variant(Integer, "sqlite")


def payment_key(
    company_code: str, payment_document: str, fiscal_year: str, bill_reference: str
) -> str:
    """One SAP payment document of one fiscal year as it applies to one bill reference: the
    inbox's payment key, and the unique key of `payments` written as one string."""
    return f"{company_code}/{payment_document}/{fiscal_year}/{bill_reference}"


class PaymentEvent(Base):
    """One received event, stored raw before it is answered (the idempotent inbox)."""

    __tablename__ = "payment_events"
    __table_args__ = (Index("ix_payment_events_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    webhook_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    cloudevent_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    payment_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    cloudevent_source: Mapped[str | None] = mapped_column(String(1000))
    cloudevent_id: Mapped[str | None] = mapped_column(String(1000))
    event_type: Mapped[str | None] = mapped_column(String(200))
    company_code: Mapped[str | None] = mapped_column(String(4))
    fiscal_year: Mapped[str | None] = mapped_column(String(4))
    accounting_document: Mapped[str | None] = mapped_column(String(10))
    authenticated_by: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Payment(Base):
    """One SAP payment document as it applies to one bill (or to a reference with no bill)."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint(
            "company_code",
            "payment_document",
            "payment_fiscal_year",
            "bill_reference",
            name="uq_payments_document",
        ),
        Index("ix_payments_bill_status", "bill_id", "status"),
        Index("ix_payments_status", "status", "bill_reference"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    company_code: Mapped[str] = mapped_column(String(4))
    payment_document: Mapped[str] = mapped_column(String(10))
    #: '' when neither SAP nor the sender gave it (only payments recorded before it was kept)
    payment_fiscal_year: Mapped[str] = mapped_column(String(4), default="")
    bill_reference: Mapped[str] = mapped_column(String(64))
    bill_id: Mapped[str | None] = mapped_column(String(64))
    sap_document_number: Mapped[str | None] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Numeric(22, 6))
    currency: Mapped[str] = mapped_column(String(3))
    posting_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int | None] = mapped_column(_ID)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PaymentDecision(Base):
    """One operator decision about a payment: the audit trail shown with the payment."""

    __tablename__ = "payment_decisions"
    __table_args__ = (Index("ix_payment_decisions_payment", "payment_id", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    payment_id: Mapped[int] = mapped_column(_ID, ForeignKey("payments.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    #: who decided: `api`, `cli` or `console`
    actor: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(100))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    #: the bill the payment is attached to after the decision
    bill_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClearingRun(Base):
    """One clearing sync; `slot` (unique) makes each cron slot run once across replicas."""

    __tablename__ = "clearing_runs"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime, unique=True)
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
