"""What a push would send for a bill, built by the push's own functions; nothing is kept or sent."""

from __future__ import annotations

from typing import Literal

from app.billing import identity, mapping
from app.billing.models import POSTING
from app.billing.schemas import BillIn, BillPreview, PreviewEntry, PreviewLine
from app.config.service import BridgeConfig
from app.platform import currency
from app.platform.errors import ConflictError
from app.sap.journal_entry import DebtorItem, GLItem, JournalEntry


def preview(config: BridgeConfig, bill_id: str, bill: BillIn) -> BillPreview:
    """The entry and SOAP request of a push of `bill` (422s as the push's, 409 when the settings
    an entry needs are missing), under a freshly drawn identity that nothing reserves."""
    if missing := config.missing_for_sap():
        mapping.validate(bill)  # an invalid bill is a 422 whatever the settings, as on a push
        raise ConflictError(
            "SAP configuration incomplete: set " + ", ".join(missing), missing=missing
        )
    entry, request = mapping.prepare_request(
        bill,
        config,
        company_code=config.get("Company Code") or "",
        document_reference_id=identity.new_reference(POSTING),
    )
    assert request is not None  # rendered: `render` defaults to true
    return BillPreview(
        bill_id=bill_id,
        integration_enabled=config.enabled,
        entry=entry_view(entry),
        soap_body=request.decode(),
    )


def entry_view(entry: JournalEntry) -> PreviewEntry:
    items: list[GLItem | DebtorItem] = [*entry.items, *entry.debtor_items]  # the SOAP order
    return PreviewEntry(
        company_code=entry.company_code,
        document_type=entry.document_type,
        document_date=entry.document_date,
        posting_date=entry.posting_date,
        currency=entry.currency,
        document_reference_id=entry.document_reference_id,
        reference1=entry.reference1,
        header_text=entry.header_text,
        created_by=entry.created_by,
        lines=[_line(item, entry.currency) for item in items],
    )


def _line(item: GLItem | DebtorItem, code: str) -> PreviewLine:
    debit_credit: Literal["S", "H"] = "S" if item.amount > 0 else "H"
    amount = currency.format_amount(abs(item.amount), code)
    if isinstance(item, GLItem):
        return PreviewLine(
            kind="gl",
            account=item.gl_account,
            debit_credit=debit_credit,
            amount=amount,
            profit_center=item.profit_center,
            cost_center=item.cost_center,
            assignment=None,
            text=item.text,
        )
    return PreviewLine(
        kind="customer",
        account=item.debtor,
        debit_credit=debit_credit,
        amount=amount,
        profit_center=None,
        cost_center=None,
        assignment=item.assignment,
        text=item.text,
    )
