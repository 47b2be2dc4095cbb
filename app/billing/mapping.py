"""From an HMIS bill to the journal entry SAP gets: validation, canonical form, lines."""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.billing.schemas import BillIn
from app.config.service import BridgeConfig, Rule
from app.platform import currency
from app.platform.errors import InvalidInputError
from app.sap.journal_entry import DebtorItem, GLItem, JournalEntry, build_request, check_request

CREATED_BY = "HMISBRIDGE"
MAX_LINES = 999
#: bills.net_total is NUMERIC(22, 6); SAP's own limit (28 digits, 6 decimals) is wider
MAX_INTEGER_DIGITS = 16


def validate(bill: BillIn) -> None:
    """The contract's rules a schema cannot express; 422 naming the field."""
    if not currency.is_known(bill.currency):
        raise InvalidInputError(
            f"currency: {bill.currency} is not an active ISO 4217 currency", field="currency"
        )
    decimals = currency.minor_units(bill.currency)
    _check_text("reference", bill.reference)
    for index, item in enumerate(bill.items):
        _check_text(f"items[{index}].department", item.department)
    if bill.refund_of is None and bill.net_total <= 0:
        raise InvalidInputError(
            "net_total: must be greater than zero "
            "(a refund bill sets refund_of and a negative total)",
            field="net_total",
        )
    if bill.refund_of is not None and bill.net_total >= 0:
        raise InvalidInputError(
            "net_total: a refund bill (refund_of set) must be negative", field="net_total"
        )
    _check_range("net_total", bill.net_total)
    if not currency.fits(bill.net_total, bill.currency):
        raise InvalidInputError(
            f"net_total: {bill.currency} allows {decimals} decimals", field="net_total"
        )
    for index, item in enumerate(bill.items):
        _check_range(f"items[{index}].net_value", item.net_value)
        if not currency.fits(item.net_value, bill.currency):
            raise InvalidInputError(
                f"items[{index}].net_value: {bill.currency} allows {decimals} decimals",
                field=f"items[{index}].net_value",
            )
    line_ids = [item.line_id for item in bill.items]
    if len(set(line_ids)) != len(line_ids):
        raise InvalidInputError("items: line_id must be unique within the bill", field="items")
    total = sum((item.net_value for item in bill.items), Decimal(0))
    if total != bill.net_total:
        raise InvalidInputError(
            f"items: net_value adds up to {currency.format_amount(total, bill.currency)} "
            f"but net_total is {currency.format_amount(bill.net_total, bill.currency)}",
            field="items",
        )


def _check_text(field: str, value: str) -> None:
    """Control characters: XML cannot carry most of them, and SAP's `token` fields would
    collapse the rest, so what finance staff see would differ from what HMIS sent."""
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidInputError(
            f"{field}: contains a control character, which SAP cannot store as sent", field=field
        )


def _check_range(field: str, amount: Decimal) -> None:
    if amount.is_finite() and abs(amount).adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidInputError(
            f"{field}: at most {MAX_INTEGER_DIGITS} digits before the decimal point",
            field=field,
        )


def prepare(
    bill: BillIn, config: BridgeConfig, *, company_code: str, document_reference_id: str
) -> JournalEntry:
    """The entry of `prepare_request`, without its request."""
    entry, _ = prepare_request(
        bill,
        config,
        company_code=company_code,
        document_reference_id=document_reference_id,
        render=False,
    )
    return entry


def prepare_request(
    bill: BillIn,
    config: BridgeConfig,
    *,
    company_code: str,
    document_reference_id: str,
    render: bool = True,
) -> tuple[JournalEntry, bytes | None]:
    """The entry a push will send and its first SOAP request, checked before anything is
    recorded, so what SAP could never accept is refused at intake (422) instead of failing
    every attempt. With `render` the request is built (the first attempt sends it as it is);
    without, only checked, exactly as building it would (a push that is only recorded)."""
    validate(bill)
    entry = journal_entry(
        bill,
        config,
        company_code=company_code,
        document_reference_id=document_reference_id,
        message_id=f"{document_reference_id}-1",
    )
    try:
        if not render:
            check_request(entry)
            return entry, None
        request = build_request(entry, now=datetime.now(UTC), message_uuid=str(uuid.uuid4()))
    except ValueError as error:
        raise InvalidInputError(
            f"bill: the journal entry would be refused by SAP's schema: {error}", field="bill"
        ) from None
    return entry, request


def canonical(bill: BillIn) -> dict[str, Any]:
    """The bill as stored and fingerprinted: amounts at the currency's decimals."""
    data = bill.model_dump(mode="json")
    data["net_total"] = currency.format_amount(bill.net_total, bill.currency)
    for item, source in zip(data["items"], bill.items, strict=True):
        item["net_value"] = currency.format_amount(source.net_value, bill.currency)
    return data


def fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 10) -> list[str]:
    """Which fields differ between two canonical bills, e.g. `items[1].net_value`."""
    found = [
        key
        for key in sorted(old.keys() | new.keys())
        if key != "items" and old.get(key) != new.get(key)
    ]
    old_items, new_items = old.get("items", []), new.get("items", [])
    if len(old_items) != len(new_items):
        found.append(f"items (was {len(old_items)} lines, now {len(new_items)})")
    else:
        for index, (a, b) in enumerate(zip(old_items, new_items, strict=True)):
            found += [
                f"items[{index}].{k}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)
            ]
    return found[:limit]


def journal_entry(
    bill: BillIn,
    config: BridgeConfig,
    *,
    company_code: str,
    document_reference_id: str,
    message_id: str,
) -> JournalEntry:
    """Debit the bill total to the receivable, credit revenue per account assignment."""
    debit_gl, debtors = _receivable(bill, config, document_reference_id)
    items = (*debit_gl, *_revenue_lines(bill, config))
    if len(items) + len(debtors) > MAX_LINES:
        raise InvalidInputError(
            f"items: the bill needs more than {MAX_LINES} SAP lines; "
            "add revenue rules so lines can be grouped",
            field="items",
        )
    return JournalEntry(
        company_code=company_code,
        document_date=bill.bill_date,
        posting_date=bill.bill_date,
        currency=bill.currency,
        currency_decimals=currency.minor_units(bill.currency),
        document_reference_id=document_reference_id,
        header_text=f"HMIS {bill.reference}",
        reference1=bill.reference[:20],
        created_by=CREATED_BY,
        document_type=_document_type(bill, bool(debtors)),
        message_id=message_id,
        items=items,
        debtor_items=debtors,
    )


def _document_type(bill: BillIn, debtor: bool) -> str:
    """DR customer invoice, DG customer credit memo, SA G/L document."""
    if not debtor:
        return "SA"
    return "DG" if bill.refund_of else "DR"


def _receivable(
    bill: BillIn, config: BridgeConfig, reference: str
) -> tuple[tuple[GLItem, ...], tuple[DebtorItem, ...]]:
    customer = (bill.payer.customer if bill.payer else None) or config.get("AR Customer")
    text = f"HMIS bill {bill.reference}"
    if customer:
        return (), (DebtorItem(customer, bill.net_total, text, reference[:18]),)
    return (GLItem(config.require("AR Account"), bill.net_total, text),), ()


def receivable_line(entry: JournalEntry) -> tuple[str, str, Decimal]:
    """The entry's receivable as (account type, customer or G/L account, amount): `_receivable`
    puts it first, a customer item or else the first G/L item."""
    if entry.debtor_items:
        return "D", entry.debtor_items[0].debtor, entry.debtor_items[0].amount
    return "S", entry.items[0].gl_account, entry.items[0].amount


def _revenue_lines(bill: BillIn, config: BridgeConfig) -> list[GLItem]:
    default = Rule(config.require("Revenue Account"))
    totals: dict[Rule, Decimal] = defaultdict(Decimal)
    departments: dict[Rule, set[str]] = defaultdict(set)
    for item in bill.items:
        rule = config.rules.get(item.department, default)
        totals[rule] += item.net_value
        departments[rule].add(item.department)
    return [
        GLItem(
            rule.gl_account,
            -amount,
            "Revenue " + ", ".join(sorted(departments[rule])),
            rule.profit_center,
            rule.cost_center,
        )
        for rule, amount in sorted(
            totals.items(),
            key=lambda kv: (kv[0].gl_account, kv[0].profit_center or "", kv[0].cost_center or ""),
        )
        if amount != 0
    ]
