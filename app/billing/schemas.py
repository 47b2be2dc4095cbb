"""What HMIS sends and what the bridge answers about bills."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.platform.fields import IsoDate

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Money = Annotated[Decimal, Field(max_digits=22, allow_inf_nan=False)]
BillId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
]

#: A bill id in a route's path (where `/` cannot appear); 1-64 characters
PATH_BILL_ID = r"^[A-Za-z0-9._:-]+$"

_STRICT = ConfigDict(extra="forbid")


class BillItemIn(BaseModel):
    """One line of the HMIS bill."""

    model_config = _STRICT
    line_id: Code
    description: Text
    net_value: Money
    department: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)
    ]


class PayerIn(BaseModel):
    """Who owes the bill; `customer` is a SAP customer (e.g. an insurer) that takes the debit."""

    model_config = _STRICT
    name: Text | None = None
    customer: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9-]{1,10}$")]
        | None
    ) = None


class BillIn(BaseModel):
    """A finalized HMIS bill."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reference": "HMIS-2024-001234",
                    "bill_date": "2024-03-15",
                    "currency": "LKR",
                    "net_total": "15000.00",
                    "items": [
                        {
                            "line_id": "1",
                            "description": "Consultation",
                            "net_value": "5000.00",
                            "department": "OPD",
                        },
                        {
                            "line_id": "2",
                            "description": "Full blood count",
                            "net_value": "10000.00",
                            "department": "LAB",
                        },
                    ],
                    "payer": {"name": "J. Perera", "customer": None},
                }
            ]
        },
    )
    reference: Code
    bill_date: IsoDate
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    net_total: Money
    items: Annotated[list[BillItemIn], Field(min_length=1, max_length=20000)]
    payer: PayerIn | None = None
    refund_of: BillId | None = Field(
        None,
        description="Set on a refund bill: the id of the bill it refunds. A refund has a negative "
        "net_total and is posted as a credit to the receivable and a debit to revenue.",
    )


class PaymentView(BaseModel):
    """A SAP payment recorded against the bill: `confirmed` and `accepted` (a mismatch an
    operator accepted) count towards `paid_amount`; `mismatch` is stored and flagged with
    `reasons`."""

    payment_document: str
    amount: str
    currency: str
    posting_date: date | None = None
    status: str
    source: str | None = Field(None, description="webhook, business_event or clearing_sync")
    reasons: list[str] | None = None


#: how many of a bill's attempts `GET /bills/{bill_id}` shows, the newest
ATTEMPT_HISTORY_SHOWN = 50


class AttemptView(BaseModel):
    """One delivery attempt of the bill, as it ended."""

    kind: Literal["posting", "reversal"] = Field(description="What the attempt owed SAP")
    outcome: str = Field(
        description="What it recorded: `posted` (SAP holds the document, sent now or found by "
        "a read-back), `rejected`, `deferred` (SAP unavailable, sent again later), `ambiguous` "
        "(SAP may have it: read back before any new send), `needs_review` or `withdrawn`"
    )
    sent_at: datetime | None = Field(
        None,
        description="When what it owed was last sent to SAP, as the attempt left it (an "
        "attempt that only read SAP back shows the earlier send)",
    )
    recorded_at: datetime = Field(description="When the attempt recorded its outcome")
    sap_document_number: str | None = Field(
        None, description="The posting's or reversal's SAP document the attempt got"
    )
    error: str | None = Field(None, description="Why it did not post, as `last_error` said")
    messages: list[dict[str, Any]] | None = Field(
        None, description="SAP's log messages of its answer (`type_id`, `severity`, `note`)"
    )


class BillView(BaseModel):
    """The push record of one bill."""

    status: Literal[
        "posted",
        "already_pushed",
        "queued",
        "rejected",
        "skipped",
        "reversed",
        "reversing",
        "withdrawn",
        "already_reversed",
        "needs_review",
    ]
    bill_id: str | None = None
    reference: str | None = None
    record_status: str | None = Field(None, description="Where the bill stands now")
    sap_document_number: str | None = None
    company_code: str | None = None
    fiscal_year: str | None = None
    document_reference_id: str | None = Field(
        None,
        description="The identity the bridge gave the posting in SAP (DocumentReferenceID); "
        "HMIS's own reference is `reference`, also in the document header",
    )
    reversal_reference_id: str | None = Field(
        None, description="The identity of the reversal, once the bill was cancelled"
    )
    reversal_document_number: str | None = None
    reversal_fiscal_year: str | None = None
    net_total: str | None = None
    currency: str | None = None
    attempts: int | None = None
    last_error: str | None = None
    messages: list[dict[str, Any]] | None = None
    payments: list[PaymentView] | None = None
    paid_amount: str | None = None
    outstanding_amount: str | None = None
    reason: str | None = None
    detail: str | None = None
    # what GET /bills and GET /bills/{bill_id} add (never a push, cancel or retry answer)
    bill_date: date | None = None
    created_at: datetime | None = Field(None, description="When the bridge recorded the push")
    updated_at: datetime | None = None
    # GET /bills/{bill_id} only: where delivery stands, for an operator
    posted_at: datetime | None = Field(None, description="When SAP's document was recorded")
    last_sent_at: datetime | None = Field(
        None, description="When the posting or reversal was last sent to SAP"
    )
    next_attempt_at: datetime | None = Field(
        None, description="When the outbox tries next (null: due now, or nothing owed)"
    )
    maybe_posted: bool | None = Field(
        None,
        description="The last send may have reached SAP: the next attempt reads SAP back first",
    )
    read_backs: int | None = Field(
        None, description="Read-backs that found nothing since the last definite answer"
    )
    cancel_requested: bool | None = None
    resolution_note: str | None = Field(
        None, description="The operator's note of the last resolve of a bill that needed review"
    )
    attempt_history: list[AttemptView] | None = Field(
        None,
        description=f"The delivery attempts, newest first (at most the newest "
        f"{ATTEMPT_HISTORY_SHOWN}; `attempts` counts every one). Not listed: attempts made "
        "before the bridge kept this history, and an attempt that lost the bill to another "
        "replica before it could record its outcome",
    )
    entry: SentEntry | None = Field(
        None,
        description="The journal entry as stored before its first send, lines in the SOAP "
        "body's order; every attempt sends it, and a reversal the same lines with S and H "
        "swapped. Absent while it is not built yet (settings incomplete, or a retry "
        "rebuilds it)",
    )

    def as_json(self) -> dict[str, Any]:
        """The answer's JSON: fields not set left out, but the entry's lines with every key
        (null where a line has no such field), as the preview shows them."""
        data = self.model_dump(mode="json", exclude_none=True)
        if self.entry is not None:
            data["entry"] = self.entry.model_dump(mode="json")
        return data


#: what GET /bills accepts as `status`
BillStatus = Literal[
    "queued", "posted", "rejected", "needs_review", "reversing", "reversed", "withdrawn"
]


class BillPage(BaseModel):
    items: list[BillView]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; absent on the last page"
    )


class ResolveIn(BaseModel):
    """An operator names the SAP document that belongs to a bill needing review."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "company_code": "1000",
                    "fiscal_year": "2024",
                    "sap_document_number": "0100000042",
                    "note": "found in Manage Journal Entries, posted 15.03. 10:02",
                }
            ]
        },
    )
    company_code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,4}$")]
    fiscal_year: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
    sap_document_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")]
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class PreviewLine(BaseModel):
    """One line of the entry, in the order of the SOAP body (G/L items, then the customer).
    Every key is always present; a field the line's kind has no place for is null."""

    kind: Literal["customer", "gl"] = Field(
        description="`customer`: a DebtorItem; `gl`: a G/L Item"
    )
    account: str = Field(description="The customer number or the G/L account")
    debit_credit: Literal["S", "H"] = Field(description="`S` debit, `H` credit")
    amount: str = Field(description="Positive, at the currency's decimals; `debit_credit` signs it")
    profit_center: str | None = Field(description="G/L lines only")
    cost_center: str | None = Field(description="G/L lines only")
    assignment: str | None = Field(description="Customer lines only (AssignmentReference)")
    text: str | None


class PreviewEntry(BaseModel):
    """The journal entry a push of the bill would send."""

    company_code: str
    document_type: str
    document_date: date
    posting_date: date
    currency: str
    document_reference_id: str = Field(
        description="Illustrative and not reserved: a push draws the bill's own identity"
    )
    reference1: str | None
    header_text: str
    created_by: str
    lines: list[PreviewLine]


class BillPreview(BaseModel):
    """What `POST /bills/{bill_id}/push` would send to SAP for this body; nothing is kept."""

    bill_id: str
    integration_enabled: bool = Field(
        description="Whether a push would send the entry now; when false it answers `skipped`"
    )
    entry: PreviewEntry
    soap_body: str = Field(
        description="The SOAP request of the first attempt; its message id, UUID, time and "
        "DocumentReferenceID are illustrative"
    )


class SentEntry(PreviewEntry):
    """The journal entry a bill sends to SAP, as stored with the bill."""

    document_reference_id: str = Field(
        description="The identity the bridge gave the posting (SAP's DocumentReferenceID)"
    )


BillView.model_rebuild()
