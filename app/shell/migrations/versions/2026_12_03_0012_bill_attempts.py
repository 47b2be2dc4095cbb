"""The history of each bill's delivery attempts (`bill_attempts`), shown with the bill.

Each attempt that recorded its outcome under its lease adds a row: its kind (posting or
reversal), its outcome, when what it owed was last sent, SAP's document, log messages and the
error. The bills table keeps its columns (the count and the latest answer). Bills recorded
before this migration have no history of their earlier attempts; a downgrade drops it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.platform.db import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bill_attempts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("bill_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("sap_document_number", sa.String(10), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sap_messages", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bill_attempts")),
    )
    op.create_index("ix_bill_attempts_bill", "bill_attempts", ["bill_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_bill_attempts_bill", table_name="bill_attempts")
    op.drop_table("bill_attempts")
