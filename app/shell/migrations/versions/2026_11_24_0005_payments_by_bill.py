"""Payments are found by bill and status, so a bill's paid amount never scans other bills'.

With only `(bill_id)` and `(status, bill_reference)` to choose from, PostgreSQL picked the
status index whenever its statistics were stale (a fresh or fast-growing table) and read every
confirmed payment once per bill: 10 ms instead of 0.6 for the webhook's lookup of 32 bills.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_payments_bill_status", "payments", ["bill_id", "status"])
    op.drop_index("ix_payments_bill_id", table_name="payments")


def downgrade() -> None:
    op.create_index("ix_payments_bill_id", "payments", ["bill_id"])
    op.drop_index("ix_payments_bill_status", table_name="payments")
