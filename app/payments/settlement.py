"""What paid a bill's receivable in SAP: the clearing sync's rules, on journal-entry items.

The items come from `API_OPLACCTGDOCITEMCUBE_SRV` (`app.sap.clearing`): the debit items of the
bill's own document, and every item of another document whose `InvoiceReference` /
`InvoiceReferenceFiscalYear` names it. Only items on the bill's receivable count — the
customer (`FinancialAccountType` `D`, `Customer`) or, without one, the AR G/L account
(`GLAccount`) of the receivable line the bridge posted. Items of reversed documents
(`IsReversed`, `IsReversal`) and clearings that were reset (`ClearingIsReversed`) count as
never made.

On the receivable, SAP's three ways of paying look like this:

* **full payment**: the payment document clears the receivable item (`IsCleared`,
  `ClearingAccountingDocument`, `ClearingDocFiscalYear`, `ClearingDate`);
* **partial payment**: the payment document posts a *credit* item referencing the invoice and
  leaves the receivable open; the last payment clears them all together;
* **residual item**: the payment document clears the receivable and posts a new *debit* item
  referencing the invoice for what is still owed; that residual is later cleared in turn.

All three are one rule: a payment document paid what it cleared on the receivable, less what
it left open there —

    paid(P) = Σ amount of receivable items P cleared − Σ amount of receivable items P posted

with SAP's signs (debit +, credit −). A partial payment (credit posted) pays its amount; the
clearing of a receivable already partly paid pays the rest; a residual item (debit posted) is
subtracted from what its document cleared and is never a payment itself. A cash discount
takes nothing away: the document cleared the whole receivable, so it paid it (the discount is
its own expense line, not on the receivable). Only positive amounts are payments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from app.sap.clearing import DocumentKey, LedgerItem


@dataclass(frozen=True)
class Receivable:
    """The receivable line the bridge posted: customer (`D`) or AR G/L account (`S`).

    `account` None: not known (no stored entry and no AR setting); then the customer item is
    taken if there is one, else the bill's debit items."""

    account_type: str
    account: str | None
    amount: Decimal


@dataclass(frozen=True)
class Paid:
    """One payment document as it applies to one bill."""

    payment: DocumentKey
    amount: Decimal
    currency: str
    posting_date: date | None


@dataclass(frozen=True)
class Settlement:
    """What SAP shows of a bill's receivable: the receivable item's amount and the payments."""

    receivable_amount: Decimal | None
    payments: list[Paid]


def _account(value: str) -> str:
    """SAP answers numeric accounts and customers zero-padded (ALPHA conversion)."""
    return (value.lstrip("0") or "0") if value.isdigit() else value


def on_receivable(item: LedgerItem, receivable: Receivable) -> bool:
    """Whether an item books on the bill's receivable account."""
    if receivable.account is None:
        return item.account_type == receivable.account_type
    if item.account_type != receivable.account_type:
        return False
    mine = item.customer if receivable.account_type == "D" else item.gl_account
    return _account(mine) == _account(receivable.account)


def settle(
    invoice: DocumentKey,
    receivable: Receivable,
    own_items: Iterable[LedgerItem],
    referencing: Iterable[LedgerItem],
) -> Settlement:
    """The payments SAP shows for one bill's document (see the module's rules)."""
    own = [i for i in own_items if i.document == invoice and not i.is_reversed]
    receivable_items = _receivable_items(own, receivable)
    if receivable.account is None and receivable_items:
        first = receivable_items[0]
        mine = first.customer if first.account_type == "D" else first.gl_account
        receivable = Receivable(first.account_type, mine, receivable.amount)
    chain = receivable_items + [
        i
        for i in referencing
        if i.invoice == invoice
        and i.document != invoice
        and not i.is_reversed
        and on_receivable(i, receivable)
    ]
    paid: dict[DocumentKey, Decimal] = {}
    dates: dict[DocumentKey, date | None] = {}
    currencies: dict[DocumentKey, str] = {}
    for item in chain:
        if item.clearing is not None and item.clearing != invoice:
            paid[item.clearing] = paid.get(item.clearing, Decimal(0)) + item.amount
            dates.setdefault(item.clearing, item.clearing_date)
            currencies.setdefault(item.clearing, item.currency)
        if item.document != invoice:
            paid[item.document] = paid.get(item.document, Decimal(0)) - item.amount
            dates[item.document] = item.posting_date or dates.get(item.document)
            currencies.setdefault(item.document, item.currency)
    payments = [
        Paid(key, amount, currencies[key], dates.get(key))
        for key, amount in sorted(paid.items())
        if amount > 0
    ]
    amount = sum((i.amount for i in receivable_items), Decimal(0)) if receivable_items else None
    return Settlement(amount, payments)


def _receivable_items(own: Sequence[LedgerItem], receivable: Receivable) -> list[LedgerItem]:
    debits = [i for i in own if i.debit_credit == "S"]
    if receivable.account is not None:
        return [i for i in debits if on_receivable(i, receivable)]
    customer = [i for i in debits if i.account_type == "D"]
    return customer or debits
