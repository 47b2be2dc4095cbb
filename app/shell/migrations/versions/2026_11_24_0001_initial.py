"""Settings store, revenue rules and bills (the outbox).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.platform.db import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_entries",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("is_secret", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_config_entries")),
    )
    op.create_table(
        "config_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_audit")),
    )
    op.create_index(op.f("ix_config_audit_key"), "config_audit", ["key"])
    op.create_table(
        "revenue_rules",
        sa.Column("department", sa.String(50), nullable=False),
        sa.Column("gl_account", sa.String(10), nullable=False),
        sa.Column("profit_center", sa.String(10), nullable=True),
        sa.Column("cost_center", sa.String(10), nullable=True),
        sa.PrimaryKeyConstraint("department", name=op.f("pk_revenue_rules")),
    )
    op.create_table(
        "bills",
        sa.Column("bill_id", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("net_total", sa.Numeric(22, 6), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("company_code", sa.String(4), nullable=False),
        sa.Column("document_reference_id", sa.String(16), nullable=False),
        sa.Column("sap_document_number", sa.String(10), nullable=True),
        sa.Column("fiscal_year", sa.String(4), nullable=True),
        sa.Column("reversal_reference_id", sa.String(16), nullable=True),
        sa.Column("reversal_document_number", sa.String(10), nullable=True),
        sa.Column("reversal_fiscal_year", sa.String(4), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sap_messages", sa.JSON(), nullable=True),
        sa.Column("maybe_posted", sa.Boolean(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("bill_id", name=op.f("pk_bills")),
    )
    op.create_index(op.f("ix_bills_reference"), "bills", ["reference"])
    op.create_index("ix_bills_due", "bills", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_bills_due", table_name="bills")
    op.drop_index(op.f("ix_bills_reference"), table_name="bills")
    op.drop_table("bills")
    op.drop_table("revenue_rules")
    op.drop_index(op.f("ix_config_audit_key"), table_name="config_audit")
    op.drop_table("config_audit")
    op.drop_table("config_entries")
