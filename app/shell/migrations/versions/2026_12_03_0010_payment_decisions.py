"""Operators' decisions on payments: match, accept (a mismatch counts as paid), dismiss.

Each decision is a row of `payment_decisions`, written in the transaction that changes the
payment's status; the payments table keeps its columns (`status` takes two new values,
`accepted` and `dismissed`). A downgrade puts such payments back in the status they had
before their latest decision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.platform.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payment_decisions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("payment_id", _ID, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("bill_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_decisions_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_decisions")),
    )
    op.create_index("ix_payment_decisions_payment", "payment_decisions", ["payment_id", "id"])


def downgrade() -> None:
    # the old code knows neither status: such a payment goes back to the status it had before
    # its latest decision (a mismatch or unmatched), for an operator to decide again
    op.execute(
        """
        UPDATE payments SET status = (
            SELECT d.from_status FROM payment_decisions d
            WHERE d.payment_id = payments.id ORDER BY d.id DESC LIMIT 1
        )
        WHERE status IN ('accepted', 'dismissed')
        """
    )
    op.drop_index("ix_payment_decisions_payment", table_name="payment_decisions")
    op.drop_table("payment_decisions")
