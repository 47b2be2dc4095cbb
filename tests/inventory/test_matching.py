"""The matching rule on hand-made items: keys, signs, cancellations, plants."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from app.inventory.matching import Tally, normalise
from app.sap.material_documents import GoodsMovementItem, parse_header_items


def gm(
    doc: str,
    mvt: str,
    qty: str,
    material: str = "000000000000001234",
    *,
    cancelled: bool = False,
    reverses: str | None = None,
    plant: str = "1710",
) -> GoodsMovementItem:
    return GoodsMovementItem(
        doc,
        "2024",
        "1",
        date(2024, 3, 1),
        material,
        plant,
        mvt,
        Decimal(qty),
        "EA",
        cancelled,
        reverses,
    )


def test_normalise() -> None:
    assert normalise("000000000000001234") == normalise(" 1234 ") == "1234"
    assert normalise("med-001 ") == "MED-001"
    assert normalise("0000") == "0" and normalise("007A") == "007A" and normalise(None) == ""


def test_signs_cancellations_and_ignored_movements() -> None:
    tally = Tally()
    tally.add_page(
        [
            gm("1", "101", "10"),
            gm("2", "101", "5", cancelled=True),
            gm("3", "102", "5", reverses="2/2024/0001"),  # cancels doc 2 in the window: dropped
            gm("4", "102", "2", reverses="9/2023/0001"),  # original outside the window: netted
            gm("5", "122", "1"),
            gm("6", "261", "7"),
            gm("7", "123", "1", reverses="8/2024/0001"),
            gm("8", "101", "3", plant="1010"),
        ],
        plant="1710",
    )
    tally.finish()
    [total] = tally.totals.values()
    assert total.quantity == Decimal("8") and total.items == 4  # 10 - 2 - 1 + 1
    assert (tally.cancelled, tally.ignored, tally.other_plant, tally.items_read) == (2, 1, 1, 8)


def test_parse_header_items_reads_odata_v2_json() -> None:
    header = {
        "MaterialDocumentYear": "2024",
        "MaterialDocument": "5000000123",
        "PostingDate": "/Date(1710460800000)/",
        "to_MaterialDocumentItem": {
            "results": [
                {
                    "MaterialDocumentItem": "1",
                    "Material": "000000000000001234",
                    "Plant": "1710",
                    "GoodsMovementType": "101",
                    "QuantityInBaseUnit": "20.000",
                    "MaterialBaseUnit": "EA",
                    "GoodsMovementIsCancelled": False,
                    "ReversedMaterialDocument": "",
                }
            ]
        },
    }
    [item] = parse_header_items(header)
    assert item.quantity == Decimal("20.000") and item.posting_date == date(2024, 3, 15)
    assert item.reference == "5000000123/2024/0001" and item.reversed_reference is None
