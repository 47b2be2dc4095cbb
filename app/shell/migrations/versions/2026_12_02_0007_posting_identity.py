"""Each posting has an identity the bridge assigns, and each SAP document one bill.

* `posting_references`: every DocumentReferenceID the bridge has sent, unique. References
  already sent (HMIS's own, or a cut with a short hash) are registered, the first bill keeping
  a reference that several shared.
* Unique indexes on the SAP document of a posting and of a reversal. Bills that an earlier
  read-back wrongly credited with another bill's document are found here: the later ones lose
  the document and become `needs_review`, naming the bill that holds it.
* Lease ids (outcome writes are fenced by them), the time a posting was last sent, the count of
  read-backs that found nothing, and an operator's resolution note.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from app.platform.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BILLS = sa.table(
    "bills",
    sa.column("bill_id", sa.String),
    sa.column("company_code", sa.String),
    sa.column("document_reference_id", sa.String),
    sa.column("reversal_reference_id", sa.String),
    sa.column("sap_document_number", sa.String),
    sa.column("fiscal_year", sa.String),
    sa.column("reversal_document_number", sa.String),
    sa.column("reversal_fiscal_year", sa.String),
    sa.column("status", sa.String),
    sa.column("last_error", sa.Text),
    sa.column("created_at", UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        batch.add_column(sa.Column("lease_id", sa.String(32)))
        batch.add_column(sa.Column("sent_at", UTCDateTime()))
        batch.add_column(
            sa.Column("read_backs", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("resolution_note", sa.Text))
    references = op.create_table(
        "posting_references",
        sa.Column("reference_id", sa.String(16), primary_key=True),
        sa.Column("company_code", sa.String(4), nullable=False),
        sa.Column("bill_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_posting_references_bill_id", "posting_references", ["bill_id"])
    bind = op.get_bind()
    rows = bind.execute(sa.select(_BILLS).order_by(_BILLS.c.created_at, _BILLS.c.bill_id)).all()
    _register_sent_references(bind, references, rows)
    _release_shared_documents(bind, rows)
    op.create_index(
        "uq_bills_document",
        "bills",
        ["company_code", "fiscal_year", "sap_document_number"],
        unique=True,
    )
    op.create_index(
        "uq_bills_reversal_document",
        "bills",
        ["company_code", "reversal_fiscal_year", "reversal_document_number"],
        unique=True,
    )


def _register_sent_references(bind: sa.Connection, table: sa.Table, rows: Sequence) -> None:
    now = datetime.now(UTC)
    seen: dict[str, dict[str, object]] = {}
    for row in rows:
        for kind, reference in (
            ("posting", row.document_reference_id),
            ("reversal", row.reversal_reference_id),
        ):
            if reference and reference not in seen:
                seen[reference] = {
                    "reference_id": reference,
                    "company_code": row.company_code or "",
                    "bill_id": row.bill_id,
                    "kind": kind,
                    "created_at": row.created_at or now,
                }
    if seen:
        bind.execute(sa.insert(table), list(seen.values()))


def _release_shared_documents(bind: sa.Connection, rows: Sequence) -> None:
    """The first bill keeps a document; the others hold it wrongly and need review."""
    holders: dict[tuple[str, str, str], str] = {}
    for row in rows:
        for number, year, columns in (
            (row.sap_document_number, row.fiscal_year, ("sap_document_number", "fiscal_year")),
            (
                row.reversal_document_number,
                row.reversal_fiscal_year,
                ("reversal_document_number", "reversal_fiscal_year"),
            ),
        ):
            if not number:
                continue
            key = (row.company_code, year or "", number)
            holder = holders.setdefault(key, row.bill_id)
            if holder == row.bill_id:
                continue
            reason = (
                f"SAP document {number} ({row.company_code}, {year}) is held by bill {holder}; "
                "an earlier read-back credited it to this bill too. Check SAP for this bill's "
                "own document, then resolve or retry"
            )
            bind.execute(
                sa.update(_BILLS)
                .where(_BILLS.c.bill_id == row.bill_id)
                .values({columns[0]: None, columns[1]: None, "status": "needs_review"})
                .values(last_error=reason)
            )


def downgrade() -> None:
    op.drop_index("uq_bills_reversal_document", table_name="bills")
    op.drop_index("uq_bills_document", table_name="bills")
    op.drop_index("ix_posting_references_bill_id", table_name="posting_references")
    op.drop_table("posting_references")
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("resolution_note")
        batch.drop_column("read_backs")
        batch.drop_column("sent_at")
        batch.drop_column("lease_id")
