"""Payments: the webhook inbox, payments against bills, clearing-sync runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.platform.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payment_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("webhook_id", sa.String(255), nullable=True),
        sa.Column("cloudevent_key", sa.String(64), nullable=True),
        sa.Column("payment_key", sa.String(100), nullable=True),
        sa.Column("cloudevent_source", sa.String(1000), nullable=True),
        sa.Column("cloudevent_id", sa.String(1000), nullable=True),
        sa.Column("event_type", sa.String(200), nullable=True),
        sa.Column("company_code", sa.String(4), nullable=True),
        sa.Column("fiscal_year", sa.String(4), nullable=True),
        sa.Column("accounting_document", sa.String(10), nullable=True),
        sa.Column("authenticated_by", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_payment_events_webhook_id")),
        sa.UniqueConstraint("cloudevent_key", name=op.f("uq_payment_events_cloudevent_key")),
        sa.UniqueConstraint("payment_key", name=op.f("uq_payment_events_payment_key")),
    )
    op.create_index("ix_payment_events_pending", "payment_events", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_payment_events_received_at"), "payment_events", ["received_at"])
    op.create_table(
        "payments",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("company_code", sa.String(4), nullable=False),
        sa.Column("payment_document", sa.String(10), nullable=False),
        sa.Column("payment_fiscal_year", sa.String(4), nullable=True),
        sa.Column("bill_reference", sa.String(64), nullable=False),
        sa.Column("bill_id", sa.String(64), nullable=True),
        sa.Column("sap_document_number", sa.String(10), nullable=True),
        sa.Column("amount", sa.Numeric(22, 6), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("posting_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_id", _ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "company_code", "payment_document", "bill_reference", name="uq_payments_document"
        ),
    )
    op.create_index("ix_payments_bill_id", "payments", ["bill_id"])
    op.create_index("ix_payments_status", "payments", ["status", "bill_reference"])
    op.create_table(
        "clearing_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("slot", UTCDateTime(), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_runs")),
        sa.UniqueConstraint("slot", name=op.f("uq_clearing_runs_slot")),
    )


def downgrade() -> None:
    op.drop_table("clearing_runs")
    op.drop_index("ix_payments_status", table_name="payments")
    op.drop_index("ix_payments_bill_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_payment_events_received_at"), table_name="payment_events")
    op.drop_index("ix_payment_events_pending", table_name="payment_events")
    op.drop_table("payment_events")
