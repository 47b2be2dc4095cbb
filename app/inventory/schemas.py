"""Request and response bodies of the pharmacy audit."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer

MAX_ITEMS_PER_CALL = 10_000
#: Body cap of `PUT /inventory/items`: 10,000 items at their longest fit well inside.
ITEMS_BODY_LIMIT = 16 * 1024 * 1024
_QTY = Decimal("0.001")

Text64 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class ItemIn(BaseModel):
    """One HMIS pharmacy item, upserted by `item_id`."""

    model_config = ConfigDict(extra="ignore")

    item_id: Text64
    code: Text64
    barcode: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    active: bool = True


class ItemsUpserted(BaseModel):
    """What one `PUT /inventory/items` (or one CSV import) changed."""

    received: int
    inserted: int
    updated: int


class SyncSkipped(BaseModel):
    """The integration is switched off: no run, no SAP call."""

    status: Literal["skipped"] = "skipped"
    reason: str = "SAP integration is disabled"


def quantity_text(value: Decimal) -> str:
    """`20` -> `"20.000"`: SAP quantities carry three decimals."""
    return f"{value.quantize(_QTY):f}"


class MaterialFinding(BaseModel):
    """A SAP material of the window that HMIS cannot use: unknown, or only an inactive item."""

    material: str
    quantity: Decimal
    unit: str
    document_items: int
    documents: list[str]
    item_id: str | None = None

    @field_serializer("quantity")
    def _quantity(self, value: Decimal) -> str:
        return quantity_text(value)


class ReceivedItem(BaseModel):
    """An active HMIS item SAP received in the window, with the net quantity."""

    item_id: str
    material: str
    quantity: Decimal
    unit: str
    document_items: int

    @field_serializer("quantity")
    def _quantity(self, value: Decimal) -> str:
        return quantity_text(value)


class RunSummary(BaseModel):
    """One audit run, as `GET /inventory/sync` lists it (newest first).

    `total_document_items` = `matched_items` + `unmatched_items` + `inactive_items`: the items
    the rule counts. Items of other movement types (`ignored_items`), cancelled ones
    (`cancelled_items`) and items of other plants are read but not counted.
    """

    run_id: int
    status: Literal["running", "succeeded", "failed"]
    mode: Literal["forward", "backfill"]
    trigger: str
    from_date: date
    to_date: date
    plant: str | None
    code_field: str
    started_at: datetime
    finished_at: datetime | None
    pages_read: int
    items_read: int
    total_document_items: int
    matched_items: int
    unmatched_items: int
    inactive_items: int
    cancelled_items: int
    ignored_items: int
    unmatched_materials: list[MaterialFinding] = Field(default_factory=list)
    inactive_materials: list[MaterialFinding] = Field(default_factory=list)
    watermark: str | None
    warnings: list[str]
    error: str | None
    rule: str


class RunDetail(RunSummary):
    """One run with the HMIS items received in its window."""

    received_items: list[ReceivedItem] = Field(default_factory=list)


def watermark_text(value: datetime | None) -> str | None:
    """`2024-03-15T23:59:59` (UTC, no offset), as the contract shows it."""
    return value.replace(tzinfo=None).isoformat(timespec="seconds") if value else None
