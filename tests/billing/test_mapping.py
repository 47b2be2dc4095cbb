"""What SAP could never accept is refused when the entry is built, before anything is kept."""

from __future__ import annotations

import pytest

from app.billing import mapping
from app.billing.schemas import BillIn
from app.config.keys import PREFIX
from app.config.service import BridgeConfig, Rule
from app.platform.errors import InvalidInputError
from tests.support.bridge import bill


def config(departments: int = 0) -> BridgeConfig:
    values = {"AR Account": "12100000", "Revenue Account": "41000000", "Company Code": "1000"}
    rules = {f"D{n}": Rule(f"4{n:07d}") for n in range(departments)}
    return BridgeConfig({PREFIX + k: v for k, v in values.items()}, rules)


def many_departments(count: int) -> BillIn:
    items = [
        {"line_id": str(n), "description": "x", "net_value": "1.00", "department": f"D{n}"}
        for n in range(count)
    ]
    return BillIn.model_validate(bill(net_total=f"{count}.00", items=items))


def test_999_lines_fit_and_1000_are_refused_naming_items() -> None:
    entry = mapping.prepare(
        many_departments(998), config(998), company_code="1000", document_reference_id="HB1"
    )
    assert len(entry.items) + len(entry.debtor_items) == 999
    with pytest.raises(InvalidInputError) as refused:
        mapping.prepare(
            many_departments(999), config(999), company_code="1000", document_reference_id="HB1"
        )
    assert refused.value.extra["field"] == "items" and "999" in refused.value.detail


def test_a_discount_is_a_debit_on_revenue_and_the_entry_balances() -> None:
    body = bill(net_total="14000.00")
    body["items"].append(
        {"line_id": "3", "description": "Staff", "net_value": "-1000.00", "department": "OPD"}
    )
    body["items"][0]["department"] = "X"
    entry = mapping.prepare(
        BillIn.model_validate(body), config(), company_code="1000", document_reference_id="HB1"
    )
    assert sum(i.amount for i in entry.items) == 0
    assert entry.document_reference_id == "HB1" and entry.reference1 == "HMIS-2024-001234"
