"""Pharmacy audit: HMIS item master, audit runs, their findings and the watermark.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.platform.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "inventory_items",
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("barcode", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("code_key", sa.String(64), nullable=False),
        sa.Column("barcode_key", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_inventory_items")),
    )
    op.create_index(op.f("ix_inventory_items_code_key"), "inventory_items", ["code_key"])
    op.create_index(op.f("ix_inventory_items_barcode_key"), "inventory_items", ["barcode_key"])
    op.create_table(
        "inventory_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("to_date", sa.Date(), nullable=False),
        sa.Column("plant", sa.String(10), nullable=True),
        sa.Column("code_field", sa.String(16), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("pages_read", sa.Integer(), nullable=False),
        sa.Column("items_read", sa.Integer(), nullable=False),
        sa.Column("total_document_items", sa.Integer(), nullable=False),
        sa.Column("matched_items", sa.Integer(), nullable=False),
        sa.Column("unmatched_items", sa.Integer(), nullable=False),
        sa.Column("inactive_items", sa.Integer(), nullable=False),
        sa.Column("cancelled_items", sa.Integer(), nullable=False),
        sa.Column("ignored_items", sa.Integer(), nullable=False),
        sa.Column("watermark", UTCDateTime(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_runs")),
        sa.UniqueConstraint("scheduled_for", name=op.f("uq_inventory_runs_scheduled_for")),
    )
    op.create_index(
        "uq_inventory_runs_running",
        "inventory_runs",
        ["status"],
        unique=True,
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )
    op.create_table(
        "inventory_run_materials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("material", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("quantity", sa.Numeric(18, 3), nullable=False),
        sa.Column("unit", sa.String(10), nullable=False),
        sa.Column("document_items", sa.Integer(), nullable=False),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["inventory_runs.id"],
            name=op.f("fk_inventory_run_materials_run_id_inventory_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_run_materials")),
    )
    op.create_index("ix_inventory_run_materials_run", "inventory_run_materials", ["run_id", "kind"])
    op.create_table(
        "inventory_sync_state",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_inventory_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("inventory_sync_state")
    op.drop_index("ix_inventory_run_materials_run", table_name="inventory_run_materials")
    op.drop_table("inventory_run_materials")
    op.drop_index("uq_inventory_runs_running", table_name="inventory_runs")
    op.drop_table("inventory_runs")
    op.drop_index(op.f("ix_inventory_items_barcode_key"), table_name="inventory_items")
    op.drop_index(op.f("ix_inventory_items_code_key"), table_name="inventory_items")
    op.drop_table("inventory_items")
