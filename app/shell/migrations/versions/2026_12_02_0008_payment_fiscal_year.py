"""A payment is identified by its fiscal year too: SAP numbers payment documents per year.

Payments recorded before keep their identity: their fiscal year is the one SAP gave (clearing
sync, business events) or else the year of their posting date, as a webhook without
`paymentFiscalYear` is now read; the inbox's payment keys are rewritten to the new form
(`company/document/year/reference`), so an event delivered again is still a duplicate.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAYMENTS = sa.table(
    "payments",
    sa.column("id", sa.Integer),
    sa.column("company_code", sa.String),
    sa.column("payment_document", sa.String),
    sa.column("payment_fiscal_year", sa.String),
    sa.column("bill_reference", sa.String),
    sa.column("posting_date", sa.Date),
)
_EVENTS = sa.table(
    "payment_events",
    sa.column("id", sa.Integer),
    sa.column("payment_key", sa.String),
    sa.column("fiscal_year", sa.String),
    sa.column("body", sa.Text),
)


def upgrade() -> None:
    bind = op.get_bind()
    years = _fill_payment_years(bind)
    _rewrite_event_keys(bind, years)
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("uq_payments_document", type_="unique")
        batch.alter_column(
            "payment_fiscal_year",
            existing_type=sa.String(4),
            nullable=False,
            server_default="",
        )
        batch.create_unique_constraint(
            "uq_payments_document",
            ["company_code", "payment_document", "payment_fiscal_year", "bill_reference"],
        )


def _fill_payment_years(bind: Any) -> dict[tuple[str, str, str], str]:
    years: dict[tuple[str, str, str], str] = {}
    for row in bind.execute(sa.select(_PAYMENTS)).all():
        year = row.payment_fiscal_year or _year(row.posting_date)
        years[(row.company_code, row.payment_document, row.bill_reference)] = year
        if year != row.payment_fiscal_year:
            bind.execute(
                _PAYMENTS.update().where(_PAYMENTS.c.id == row.id).values(payment_fiscal_year=year)
            )
    return years


def _rewrite_event_keys(bind: Any, years: dict[tuple[str, str, str], str]) -> None:
    rows = bind.execute(sa.select(_EVENTS).where(_EVENTS.c.payment_key.is_not(None))).all()
    for row in rows:
        company, document, reference = row.payment_key.split("/", 2)
        year = years.get((company, document, reference))
        if year is None:
            year = row.fiscal_year or _year_of_body(row.body)
        key = f"{company}/{document}/{year}/{reference}"
        bind.execute(_EVENTS.update().where(_EVENTS.c.id == row.id).values(payment_key=key))


def _year(value: date | None) -> str:
    return f"{value.year:04d}" if value is not None else ""


def _year_of_body(body: str) -> str:
    """The posting date's year of a stored webhook body (bare or a CloudEvent's `data`)."""
    try:
        document = json.loads(body)
        data = document.get("data", document) if isinstance(document, dict) else {}
        posting = data.get("postingDate") if isinstance(data, dict) else None
        return str(posting)[:4] if posting else ""
    except ValueError:
        return ""


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("uq_payments_document", type_="unique")
        batch.alter_column(
            "payment_fiscal_year", existing_type=sa.String(4), nullable=True, server_default=None
        )
        batch.create_unique_constraint(
            "uq_payments_document", ["company_code", "payment_document", "bill_reference"]
        )
    bind = op.get_bind()
    rows = bind.execute(sa.select(_EVENTS).where(_EVENTS.c.payment_key.is_not(None))).all()
    for row in rows:
        company, document, _year_part, reference = row.payment_key.split("/", 3)
        key = f"{company}/{document}/{reference}"
        bind.execute(_EVENTS.update().where(_EVENTS.c.id == row.id).values(payment_key=key))
