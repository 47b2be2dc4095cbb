"""The matching rule: which goods-receipt items count, with which sign, under which key.

Pure functions over parsed SAP items; the service feeds them pages and asks the database only
for the keys that occurred.

Rule (also in the README and in every run's `rule`):

* movement type 101 (goods receipt for a purchase order) counts +quantity;
* 102 (its reversal) and 122 (return delivery to the supplier) count -quantity;
* 123 (reversal of a return) counts +quantity, so a cancelled return nets to zero;
* an item SAP flags `GoodsMovementIsCancelled` is excluded, and so is a reversal item in the
  same window that points at an excluded item (the pair drops out instead of going negative);
* every other movement type (issues, transfers, 103/105 GR-blocked stock, 561 ...) is ignored;
* quantities are `QuantityInBaseUnit` in `MaterialBaseUnit`, summed per material and unit;
* the SAP material number and the HMIS code (or barcode) are compared after trimming blanks and
  upper-casing, and purely numeric numbers lose their leading zeros (000000000000001234 = 1234).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from app.sap.material_documents import GoodsMovementItem

RULE = (
    "counted: movement type 101 (+), 102 and 122 (-), 123 (+); excluded: items flagged "
    "GoodsMovementIsCancelled and reversals of them in the same window; ignored: every other "
    "movement type; quantity: QuantityInBaseUnit per material and base unit; material numbers "
    "compared trimmed, upper-cased, numeric ones without leading zeros"
)
SIGNS: dict[str, int] = {"101": 1, "102": -1, "122": -1, "123": 1}
REVERSALS = frozenset({"102", "123"})
MAX_DOCUMENTS = 50


def normalise(code: str | None) -> str:
    """The match key of a SAP material number or an HMIS code: 000001234 -> 1234, ' ab ' -> AB."""
    key = (code or "").strip().upper()
    if key.isdigit() and key.isascii():
        key = key.lstrip("0") or "0"
    return key


@dataclass
class MaterialTotal:
    """The net quantity of one material (in one unit) over the counted items of a window."""

    material: str
    unit: str
    quantity: Decimal = Decimal(0)
    items: int = 0
    documents: list[str] = field(default_factory=list)

    def add(self, item: GoodsMovementItem, sign: int) -> None:
        self.quantity += sign * item.quantity
        self.items += 1
        if len(self.documents) < MAX_DOCUMENTS:
            self.documents.append(item.reference)


@dataclass
class Tally:
    """What a window's items add up to before the item master is consulted."""

    items_read: int = 0
    ignored: int = 0
    cancelled: int = 0
    other_plant: int = 0
    totals: dict[tuple[str, str], MaterialTotal] = field(default_factory=dict)
    #: Counted reversal items, by the item they reverse, until the window's end decides them.
    _reversals: dict[str, list[GoodsMovementItem]] = field(default_factory=dict)
    _cancelled_refs: set[str] = field(default_factory=set)

    def add_page(self, items: Iterable[GoodsMovementItem], plant: str | None) -> None:
        """Fold one page of items into the totals."""
        for item in items:
            self.items_read += 1
            if plant and item.plant != plant:
                self.other_plant += 1
            elif item.movement_type not in SIGNS:
                self.ignored += 1
            elif item.is_cancelled:
                self.cancelled += 1
                self._cancelled_refs.add(item.reference)
            elif item.movement_type in REVERSALS and item.reversed_reference:
                self._reversals.setdefault(item.reversed_reference, []).append(item)
            else:
                self._count(item)

    def finish(self) -> None:
        """Decide the held reversals: dropped with a cancelled original, counted otherwise."""
        for reversed_ref, items in self._reversals.items():
            for item in items:
                if reversed_ref in self._cancelled_refs:
                    self.cancelled += 1
                else:
                    self._count(item)
        self._reversals.clear()

    def _count(self, item: GoodsMovementItem) -> None:
        key = (normalise(item.material), item.unit)
        total = self.totals.get(key)
        if total is None:
            total = self.totals[key] = MaterialTotal(item.material.strip(), item.unit)
        total.add(item, SIGNS[item.movement_type])

    @property
    def counted(self) -> int:
        return sum(t.items for t in self.totals.values())

    def keys(self) -> set[str]:
        """Distinct normalised material numbers that were counted."""
        return {key for key, _unit in self.totals}
