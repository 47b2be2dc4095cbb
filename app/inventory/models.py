"""Tables of the pharmacy audit: the HMIS item master, audit runs and their findings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db import Base, UTCDateTime, utcnow

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
FORWARD, BACKFILL = "forward", "backfill"
UNMATCHED, INACTIVE, RECEIVED = "unmatched", "inactive", "received"


class InventoryItem(Base):
    """One HMIS pharmacy item; `code_key`/`barcode_key` are the normalised match keys."""

    __tablename__ = "inventory_items"

    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    barcode: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    unit: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    code_key: Mapped[str] = mapped_column(String(64), index=True)
    barcode_key: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InventoryRun(Base):
    """One audit run. At most one row is `running` at a time (partial unique index)."""

    __tablename__ = "inventory_runs"
    __table_args__ = (
        Index(
            "uq_inventory_runs_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    from_date: Mapped[date] = mapped_column(Date)
    to_date: Mapped[date] = mapped_column(Date)
    plant: Mapped[str | None] = mapped_column(String(10))
    code_field: Mapped[str] = mapped_column(String(16))
    #: The cron slot a scheduled run belongs to: unique, so replicas run each slot once.
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime, unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pages_read: Mapped[int] = mapped_column(Integer, default=0)
    items_read: Mapped[int] = mapped_column(Integer, default=0)
    total_document_items: Mapped[int] = mapped_column(Integer, default=0)
    matched_items: Mapped[int] = mapped_column(Integer, default=0)
    unmatched_items: Mapped[int] = mapped_column(Integer, default=0)
    inactive_items: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_items: Mapped[int] = mapped_column(Integer, default=0)
    ignored_items: Mapped[int] = mapped_column(Integer, default=0)
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class InventoryRunMaterial(Base):
    """A finding of a run: an unmatched material, one matched to an inactive item, or an
    HMIS item received in the window, with its net quantity."""

    __tablename__ = "inventory_run_materials"
    __table_args__ = (Index("ix_inventory_run_materials_run", "run_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("inventory_runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    material: Mapped[str] = mapped_column(String(40))
    item_id: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 3))
    unit: Mapped[str] = mapped_column(String(10))
    document_items: Mapped[int] = mapped_column(Integer)
    documents: Mapped[list[Any]] = mapped_column(JSON, default=list)


class InventorySyncState(Base):
    """Named state of the audit; `watermark` is the end of the last audited complete day."""

    __tablename__ = "inventory_sync_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
