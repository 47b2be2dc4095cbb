"""What paid a receivable: the clearing rules on items shaped like SAP's cube rows.

The hand-written rows are in `API_OPLACCTGDOCITEMCUBE_SRV`'s JSON form (strings for decimals,
`/Date(ms)/` dates, zero-padded numbers); the property test posts and pays invoices in the
simulator's ledger every way SAP can and reads its cube rows back the same way.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.payments.settlement import Receivable, settle
from app.sap.clearing import DocumentKey, LedgerItem, _item
from sapsim.config import SimConfig
from sapsim.cube import _entity_set, line_values
from sapsim.ledger import EntryRequest, LedgerError, LineRequest
from sapsim.odata_query import serialize_value
from sapsim.state import SimState

INVOICE = DocumentKey("1000", "2024", "0100000001")
CUSTOMER = Receivable("D", "10000001", Decimal("10000.00"))


def _date(day: str) -> str:
    millis = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
    return f"/Date({millis})/"


def row(
    document: str,
    item: int,
    amount: str,
    *,
    year: str = "2024",
    account_type: str = "D",
    customer: str = "0010000001",
    gl: str = "0012000000",
    invoice: str | None = None,
    cleared_by: tuple[str, str] | None = None,
    reversed_: bool = False,
    posted: str = "2024-03-20",
) -> dict[str, Any]:
    """One cube row; `cleared_by` is (clearing document, its fiscal year)."""
    values = {
        "CompanyCode": "1000",
        "FiscalYear": year,
        "AccountingDocument": document,
        "AccountingDocumentItem": f"{item:03d}",
        "FinancialAccountType": account_type,
        "GLAccount": gl,
        "Customer": customer if account_type == "D" else "",
        "DebitCreditCode": "H" if amount.startswith("-") else "S",
        "AmountInTransactionCurrency": amount,
        "TransactionCurrency": "LKR",
        "PostingDate": _date(posted),
        "IsReversed": reversed_,
        "IsReversal": False,
        "IsCleared": cleared_by is not None,
        "ClearingAccountingDocument": cleared_by[0] if cleared_by else "",
        "ClearingDocFiscalYear": cleared_by[1] if cleared_by else "",
        "ClearingDate": _date(posted) if cleared_by else None,
        "ClearingIsReversed": False,
    }
    if invoice is not None:
        values |= {"InvoiceReference": invoice, "InvoiceReferenceFiscalYear": "2024"}
    return values


def paid(own: list[dict], referencing: list[dict], receivable: Receivable = CUSTOMER) -> list:
    found = settle(INVOICE, receivable, map(_item, own), map(_item, referencing))
    return [(p.payment.document, p.payment.fiscal_year, str(p.amount)) for p in found.payments]


def test_a_full_payment_pays_the_receivable_it_cleared() -> None:
    own = [row("0100000001", 1, "10000.00", cleared_by=("1400000001", "2024"))]
    assert paid(own, []) == [("1400000001", "2024", "10000.00")]


def test_partial_payments_pay_their_credits_and_the_last_one_the_rest() -> None:
    """Partial-payment method: credits referencing the invoice; the last payment clears all
    and its own clearing line (not referencing the invoice) is not among the rows."""
    own = [row("0100000001", 1, "10000.00", cleared_by=("1400000003", "2024"))]
    referencing = [
        row("1400000001", 2, "-3000.00", invoice="0100000001", cleared_by=("1400000003", "2024")),
        row("1400000002", 2, "-2500.00", invoice="0100000001", cleared_by=("1400000003", "2024")),
    ]
    assert paid(own, referencing) == [
        ("1400000001", "2024", "3000.00"),
        ("1400000002", "2024", "2500.00"),
        ("1400000003", "2024", "4500.00"),
    ]


def test_an_open_partial_payment_leaves_the_receivable_open() -> None:
    own = [row("0100000001", 1, "10000.00")]
    referencing = [row("1400000001", 2, "-6000.00", invoice="0100000001")]
    assert paid(own, referencing) == [("1400000001", "2024", "6000.00")]


def test_a_residual_item_is_never_a_payment() -> None:
    """Residual-item method: 1400000001 clears the receivable and opens a 4,000 debit that
    references the invoice; it paid 6,000, not -4,000. The residual is paid later in turn."""
    own = [row("0100000001", 1, "10000.00", cleared_by=("1400000001", "2024"))]
    residual = row("1400000001", 3, "4000.00", invoice="0100000001")
    assert paid(own, [residual]) == [("1400000001", "2024", "6000.00")]
    residual_paid = row(
        "1400000001", 3, "4000.00", invoice="0100000001", cleared_by=("1400000002", "2024")
    )
    assert paid(own, [residual_paid]) == [
        ("1400000001", "2024", "6000.00"),
        ("1400000002", "2024", "4000.00"),
    ]


def test_a_payment_with_a_cash_discount_settles_the_whole_receivable() -> None:
    """Bank 9,800 + discount expense 200 clear 10,000: the discount line books on an expense
    account, not on the receivable, so the payment settled 10,000."""
    own = [row("0100000001", 1, "10000.00", cleared_by=("1400000001", "2024"))]
    discount = row("1400000001", 2, "200.00", account_type="S", gl="0074000000")
    assert paid(own, [discount]) == [("1400000001", "2024", "10000.00")]


def test_a_reversed_payment_and_a_reset_clearing_count_for_nothing() -> None:
    own = [row("0100000001", 1, "10000.00")]  # reset: open again
    reversed_partial = row("1400000001", 2, "-6000.00", invoice="0100000001", reversed_=True)
    assert paid(own, [reversed_partial]) == []
    reset = row("0100000001", 1, "10000.00", cleared_by=("1400000002", "2024"))
    reset["ClearingIsReversed"] = True
    assert paid([reset], []) == []


def test_payment_documents_of_two_years_with_one_number_are_two_payments() -> None:
    own = [row("0100000001", 1, "10000.00", cleared_by=("1400000001", "2025"))]
    referencing = [
        row("1400000001", 2, "-4000.00", invoice="0100000001", cleared_by=("1400000001", "2025"))
    ]
    assert paid(own, referencing) == [
        ("1400000001", "2024", "4000.00"),
        ("1400000001", "2025", "6000.00"),
    ]


def test_the_receivable_is_the_line_posted_not_every_debit() -> None:
    """An AR G/L receivable of 14,000 beside a 1,000 discount debit on a revenue account: the
    receivable SAP shows is 14,000, and only items on the AR account count."""
    receivable = Receivable("S", "12100000", Decimal("14000.00"))
    own = [
        row("0100000001", 1, "14000.00", account_type="S", gl="0012100000"),
        row("0100000001", 4, "1000.00", account_type="S", gl="0041000000"),
    ]
    referencing = [
        row("1400000001", 2, "-5000.00", account_type="S", gl="0012100000", invoice="0100000001"),
        row("1400000009", 1, "-99.00", account_type="S", gl="0041000000", invoice="0100000001"),
    ]
    found = settle(INVOICE, receivable, map(_item, own), map(_item, referencing))
    assert found.receivable_amount == Decimal("14000.00")
    assert [(p.payment.document, p.amount) for p in found.payments] == [
        ("1400000001", Decimal("5000.00"))
    ]


# --- every way of paying, in the simulator's ledger -----------------------------------------

_PROPERTIES = _entity_set().entity_type.properties


def _wire(values: dict[str, Any]) -> dict[str, Any]:
    return {k: serialize_value(_PROPERTIES[k], v) for k, v in values.items() if k in _PROPERTIES}


def _ledger_items(state: SimState) -> list[LedgerItem]:
    return [
        _item(_wire(line_values(state, doc, line)))
        for doc in state.ledger.documents.values()
        for line in doc.lines
    ]


payments = st.lists(
    st.tuples(
        st.sampled_from(["partial", "residual"]),
        st.integers(1, 100),  # percent of what is open
        st.integers(0, 5),  # cash discount, percent of the payment
        st.sampled_from([2024, 2025]),  # the payment's fiscal year
        st.booleans(),  # reset and reverse it afterwards
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(payments=payments, customer=st.booleans())
def test_what_the_rules_count_as_paid_is_what_the_receivable_lost(payments, customer) -> None:
    """However a bill is paid — partial payments, residual items, cash discounts, two fiscal
    years, clearings reset — the payments found add up to the receivable less what is still
    open on it, each is positive, and none is a reversed document."""
    state = SimState(SimConfig())
    receivable_line = (
        LineRequest("D", "10000001", Decimal("10000.00"), "LKR")
        if customer
        else LineRequest("S", "12100000", Decimal("10000.00"), "LKR")
    )
    result = state.ledger.post(
        EntryRequest(
            message_id="M-1",
            company_code="1000",
            document_type="DR" if customer else "SA",
            posting_date=date(2024, 3, 1),
            document_date=date(2024, 3, 1),
            lines=[receivable_line, LineRequest("S", "41000000", Decimal("-10000.00"), "LKR")],
        )
    )
    invoice = result.document
    assert invoice is not None
    made = []
    for method, percent, discount, year, reset in payments:
        opened = _open_balance(state, invoice)
        if opened <= 0:
            break
        amount = max(Decimal("0.01"), (opened * percent / 100).quantize(Decimal("0.01")))
        cash = (amount * discount / 100).quantize(Decimal("0.01"))
        done = state.ledger.clear(
            "1000", invoice.fiscal_year, invoice.number, amount, date(year, 3, 20), method, cash
        )
        made.append((done, reset))
    for done, reset in reversed(made):
        if reset:
            with contextlib.suppress(LedgerError):  # its items were cleared by a later payment
                state.ledger.reset_clearing("1000", done["fiscal_year"], done["payment_document"])
    key = DocumentKey("1000", invoice.fiscal_year, invoice.number)
    items = _ledger_items(state)
    kind, account = ("D", "10000001") if customer else ("S", "12100000")
    found = settle(
        key,
        Receivable(kind, account, Decimal("10000.00")),
        [i for i in items if i.document == key and i.debit_credit == "S"],
        [i for i in items if i.invoice == key],
    )
    total = sum((p.amount for p in found.payments), Decimal(0))
    assert total == Decimal("10000.00") - _open_balance(state, invoice)
    assert all(p.amount > 0 for p in found.payments)
    reversed_documents = {
        (d.fiscal_year, d.number) for d in state.ledger.documents.values() if d.is_reversed
    }
    assert not {(p.payment.fiscal_year, p.payment.document) for p in found.payments} & (
        reversed_documents
    )


def _open_balance(state: SimState, invoice: Any) -> Decimal:
    receivable = state.ledger._receivable_line(invoice)
    return sum(
        (line.amount for _, line in state.ledger._open_items(invoice, receivable)), Decimal(0)
    )
