"""Indexes for the operators' bill list (GET /bills, /console/bills): newest recorded first,
optionally by status, and the search by SAP document number.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_bills_listed", "bills", ["created_at", "bill_id"])
    op.create_index("ix_bills_listed_by_status", "bills", ["status", "created_at", "bill_id"])
    op.create_index("ix_bills_sap_document", "bills", ["sap_document_number"])
    op.create_index("ix_bills_reversal_document", "bills", ["reversal_document_number"])


def downgrade() -> None:
    op.drop_index("ix_bills_reversal_document", table_name="bills")
    op.drop_index("ix_bills_sap_document", table_name="bills")
    op.drop_index("ix_bills_listed_by_status", table_name="bills")
    op.drop_index("ix_bills_listed", table_name="bills")
