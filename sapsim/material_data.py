"""Seeded goods-receipt data for the simulated `API_MATERIAL_DOCUMENT_SRV`, with ground truth.

`generate(...)` builds material documents (several plants, zero-padded numeric materials,
receipts, partial reversals, cancellations, returns, goods issues and transfers) and the HMIS
item master that goes with them. Every item remembers *why* it was generated (`kind`) and which
HMIS category its material has, so `expected(...)` can state the right audit result of any
window without using the bridge's code.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

SIGN = {"101": 1, "102": -1, "122": -1, "123": 1}
ISSUE_TYPES = ("201", "261", "311", "551", "561", "103", "105")
UNITS = ("EA", "TAB", "BOT", "ML", "PAK")


@dataclass
class Material:
    """A SAP material and what HMIS knows of it (`category`: known, inactive or unknown)."""

    sap: str  # as SAP sends it (numeric ones zero-padded to 18)
    canonical: str  # the same number without padding, upper case
    unit: str
    category: str
    item_id: str | None = None


@dataclass
class SimItem:
    """One material document item and why it exists (`kind`)."""

    year: str
    document: str
    item: int
    material: Material
    plant: str
    movement_type: str
    quantity: Decimal
    kind: str  # receipt, partial_reversal, return, cancelled, cancellation, issue
    cancelled: bool = False
    reverses: SimItem | None = None
    posting_date: date | None = None

    @property
    def reference(self) -> str:
        return f"{self.document}/{self.year}/{self.item:04d}"


@dataclass
class SimHeader:
    year: str
    document: str
    posting_date: date
    items: list[SimItem] = field(default_factory=list)


@dataclass
class Dataset:
    """Documents sorted by (year, document), the HMIS item master and the generation knobs."""

    headers: list[SimHeader]
    hmis_items: list[dict[str, Any]]
    materials: list[Material]
    params: dict[str, Any]

    @property
    def item_count(self) -> int:
        return sum(len(h.items) for h in self.headers)


def generate(
    *,
    seed: int = 1,
    items: int = 500,
    start: date = date(2024, 3, 1),
    days: int = 30,
    plants: tuple[str, ...] = ("1710", "1720", "1010"),
    code_field: str = "code",
    materials: int | None = None,
    extra_hmis_items: int = 20,
) -> Dataset:
    """About `items` material document items posted over `days` days from `start`."""
    rng = random.Random(seed)
    catalogue = _materials(rng, materials or max(10, items // 15), code_field)
    gen = _Generator(rng, catalogue, plants, start, days)
    while gen.count < items:
        gen.document()
    headers = sorted(gen.headers, key=lambda h: (h.year, h.document))
    hmis = _hmis_items(rng, catalogue, code_field, extra_hmis_items)
    params = {
        "seed": seed,
        "items": items,
        "start": start.isoformat(),
        "days": days,
        "plants": list(plants),
        "code_field": code_field,
    }
    return Dataset(headers, hmis, catalogue, params)


def _materials(rng: random.Random, count: int, code_field: str) -> list[Material]:
    result = []
    for index in range(count):
        roll = rng.random()
        category = "unknown" if roll < 0.12 else "inactive" if roll < 0.18 else "known"
        unit = rng.choice(UNITS)
        if code_field == "barcode":
            number = str(4790000000000 + index * 7919 + (900000 if category == "unknown" else 0))
            result.append(Material(number.zfill(18), number, unit, category))
        elif rng.random() < 0.5:
            number = str((90000 if category == "unknown" else 1000) + index)
            result.append(Material(number.zfill(18), number, unit, category))
        else:
            code = f"{'MAT-X' if category == 'unknown' else 'MED-'}{index:05d}"
            result.append(Material(code, code, unit, category))
    return result


def _hmis_items(
    rng: random.Random, catalogue: list[Material], code_field: str, extra: int
) -> list[dict[str, Any]]:
    rows = []
    for index, material in enumerate(catalogue):
        if material.category == "unknown":
            continue
        material.item_id = f"HM{index:06d}"
        shown = _hmis_spelling(rng, material.canonical)
        code, barcode = (
            (f"PH-{index:05d}", shown) if code_field == "barcode" else (shown, f"8{index:012d}")
        )
        rows.append(
            {
                "item_id": material.item_id,
                "code": code,
                "barcode": barcode,
                "name": f"Item {material.canonical}",
                "unit": material.unit,
                "active": material.category == "known",
            }
        )
    for index in range(extra):  # items HMIS has that SAP never received in the data
        rows.append(
            {
                "item_id": f"HX{index:06d}",
                "code": f"NOREC-{index:05d}",
                "barcode": f"7{index:012d}",
                "name": f"Never received {index}",
                "unit": "EA",
                "active": True,
            }
        )
    return rows


def _hmis_spelling(rng: random.Random, canonical: str) -> str:
    """How HMIS staff typed the code: lower case, blanks around, or as is."""
    roll = rng.random()
    if roll < 0.2:
        return canonical.lower()
    if roll < 0.3:
        return f" {canonical} "
    return canonical


class _Generator:
    def __init__(
        self,
        rng: random.Random,
        catalogue: list[Material],
        plants: tuple[str, ...],
        start: date,
        days: int,
    ) -> None:
        self.rng, self.catalogue, self.plants = rng, catalogue, plants
        self.start, self.days = start, days
        self.headers: list[SimHeader] = []
        self.receipts: list[tuple[SimHeader, SimItem]] = []
        self.returns: list[tuple[SimHeader, SimItem]] = []
        self.count = 0
        self.sequence = 0

    def header(self, posting: date) -> SimHeader:
        self.sequence += 1
        header = SimHeader(str(posting.year), str(4900000000 + self.sequence), posting)
        self.headers.append(header)
        return header

    def add(self, header: SimHeader, **values: Any) -> SimItem:
        item = SimItem(
            header.year,
            header.document,
            len(header.items) + 1,
            posting_date=header.posting_date,
            **values,
        )
        header.items.append(item)
        self.count += 1
        return item

    def document(self) -> None:
        rng = self.rng
        posting = self.start + timedelta(days=rng.randrange(self.days))
        roll = rng.random()
        if roll < 0.08 and self.receipts:
            self.reverse(posting, cancel=True)
        elif roll < 0.11 and self.receipts:
            self.reverse(posting, cancel=False)
        elif roll < 0.15 and self.receipts:
            self.give_back(posting)
        elif roll < 0.16 and self.returns:
            self.cancel_return(posting)
        elif roll < 0.28:
            self.issue(posting)
        else:
            self.receive(posting)

    def _quantity(self) -> Decimal:
        whole = Decimal(self.rng.randint(1, 500))
        return whole if self.rng.random() < 0.8 else whole + Decimal("0.500")

    def receive(self, posting: date) -> None:
        header, plant = self.header(posting), self.rng.choice(self.plants)
        for _ in range(self.rng.randint(1, 4)):
            item = self.add(
                header,
                material=self.rng.choice(self.catalogue),
                plant=plant,
                movement_type="101",
                quantity=self._quantity(),
                kind="receipt",
            )
            self.receipts.append((header, item))

    def _later(self, original: SimHeader, posting: date) -> date:
        return max(posting, original.posting_date + timedelta(days=self.rng.randint(0, 3)))

    def reverse(self, posting: date, *, cancel: bool) -> None:
        original_header, original = self.receipts.pop(self.rng.randrange(len(self.receipts)))
        header = self.header(self._later(original_header, posting))
        quantity = (
            original.quantity if cancel else (original.quantity / 2).quantize(Decimal("0.001"))
        )
        if cancel:
            original.cancelled, original.kind = True, "cancelled"
        self.add(
            header,
            material=original.material,
            plant=original.plant,
            movement_type="102",
            quantity=quantity,
            reverses=original,
            kind="cancellation" if cancel else "partial_reversal",
        )

    def give_back(self, posting: date) -> None:
        original_header, original = self.rng.choice(self.receipts)
        header = self.header(self._later(original_header, posting))
        item = self.add(
            header,
            material=original.material,
            plant=original.plant,
            movement_type="122",
            quantity=Decimal(1),
            kind="return",
        )
        self.returns.append((header, item))

    def cancel_return(self, posting: date) -> None:
        original_header, original = self.returns.pop(self.rng.randrange(len(self.returns)))
        header = self.header(self._later(original_header, posting))
        original.cancelled, original.kind = True, "cancelled"
        self.add(
            header,
            material=original.material,
            plant=original.plant,
            movement_type="123",
            quantity=original.quantity,
            reverses=original,
            kind="cancellation",
        )

    def issue(self, posting: date) -> None:
        header, plant = self.header(posting), self.rng.choice(self.plants)
        for _ in range(self.rng.randint(1, 3)):
            self.add(
                header,
                material=self.rng.choice(self.catalogue),
                plant=plant,
                movement_type=self.rng.choice(ISSUE_TYPES),
                quantity=self._quantity(),
                kind="issue",
            )


def expected(
    dataset: Dataset, from_date: date, to_date: date, plant: str | None = None
) -> dict[str, Any]:
    """The audit result the rule gives for the window, computed from why each item exists."""
    counts: Counter[str] = Counter()
    quantities: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    headers = [h for h in dataset.headers if from_date <= h.posting_date <= to_date]
    for header in headers:
        for item in header.items:
            counts["items_read"] += 1
            if plant and item.plant != plant:
                continue
            if item.kind == "issue":
                counts["ignored"] += 1
            elif item.kind == "cancelled" or (
                item.kind == "cancellation" and _in_window(item.reverses, from_date, to_date)
            ):
                counts["cancelled"] += 1
            else:
                category = {"known": "matched", "inactive": "inactive"}.get(
                    item.material.category, "unmatched"
                )
                counts[category] += 1
                key = item.material.item_id if category == "matched" else item.material.canonical
                quantities[category][str(key)] += SIGN[item.movement_type] * item.quantity
    return {
        "headers": len(headers),
        "items_read": counts["items_read"],
        "matched_items": counts["matched"],
        "unmatched_items": counts["unmatched"],
        "inactive_items": counts["inactive"],
        "cancelled_items": counts["cancelled"],
        "ignored_items": counts["ignored"],
        "total_document_items": counts["matched"] + counts["unmatched"] + counts["inactive"],
        "unmatched": dict(quantities["unmatched"]),
        "inactive": dict(quantities["inactive"]),
        "received": dict(quantities["matched"]),
    }


def _in_window(item: SimItem | None, from_date: date, to_date: date) -> bool:
    return (
        item is not None
        and item.posting_date is not None
        and (from_date <= item.posting_date <= to_date)
    )
