"""What the payment webhook accepts and what the payment routes answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from app.platform import currency, json_body
from app.platform.errors import InvalidInputError, describe_validation
from app.platform.fields import IsoDate

DocumentNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Z0-9]{1,10}$")
]
CompanyCodeText = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Z0-9]{1,4}$")
]
EventText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


def document_number(value: str) -> str:
    """SAP document numbers as SAP stores them: numeric ones zero-padded to 10."""
    return value.zfill(10) if value.isdigit() else value


class PaymentIn(BaseModel):
    """A payment reported by middleware, bare or as CloudEvents `data`."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "sapDocumentNumber": "0100000042",
                    "paymentDocument": "1400000017",
                    "hmsBillReference": "HMIS-2024-001234",
                    "amount": "15000.00",
                    "currency": "LKR",
                    "postingDate": "2024-03-15",
                    "paymentFiscalYear": "2024",
                    "note": "optional",
                }
            ]
        },
    )
    paymentDocument: DocumentNumber
    hmsBillReference: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
    ]
    amount: Annotated[Decimal, Field(gt=0, max_digits=22, allow_inf_nan=False)]
    currency: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z]{3}$")]
    sapDocumentNumber: DocumentNumber | None = None
    postingDate: IsoDate | None = None
    paymentFiscalYear: Annotated[
        str | None,
        Field(
            description="The payment document's fiscal year (SAP numbers payment documents per "
            "fiscal year). Without it, the year of postingDate: right for calendar fiscal "
            "years only.",
            examples=["2024"],
        ),
    ] = None
    companyCode: CompanyCodeText | None = None
    note: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("paymentFiscalYear", mode="before")
    @classmethod
    def _four_digits(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not re.fullmatch(r"\d{4}", value)):
            raise ValueError('must be the four digits of a fiscal year, such as "2024"')
        return value

    @model_validator(mode="after")
    def _year_known(self) -> PaymentIn:
        if self.paymentFiscalYear is None and self.postingDate is None:
            raise ValueError(
                "paymentFiscalYear or postingDate is required: SAP numbers payment documents "
                "per fiscal year"
            )
        return self

    @property
    def fiscal_year(self) -> str:
        """The payment document's fiscal year as given, else the posting date's year."""
        if self.paymentFiscalYear is not None:
            return self.paymentFiscalYear
        assert self.postingDate is not None  # _year_known
        return f"{self.postingDate.year:04d}"

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_a_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise ValueError('must be a decimal number such as "15000.00"')
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if not currency.is_known(value):
            raise ValueError("must be an active ISO 4217 currency code such as LKR")
        return value

    @field_validator("paymentDocument", "sapDocumentNumber")
    @classmethod
    def _pad(cls, value: str | None) -> str | None:
        return document_number(value) if value else value


class JournalEntryKeys(BaseModel):
    """`data` of an SAP business event such as `JournalEntry.Created.v1`: keys only."""

    model_config = ConfigDict(extra="ignore")
    CompanyCode: CompanyCodeText
    FiscalYear: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{4}$")]
    AccountingDocument: DocumentNumber

    @field_validator("AccountingDocument")
    @classmethod
    def _pad(cls, value: str) -> str:
        return document_number(value)


class CloudEventIn(BaseModel):
    """The CloudEvents 1.0 context attributes the bridge relies on."""

    model_config = ConfigDict(extra="ignore")
    specversion: Literal["1.0"]
    id: EventText
    source: EventText
    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    data: Any = None


@dataclass(frozen=True)
class IncomingEvent:
    """A parsed webhook body: a payment object, or the keys of a journal entry to check."""

    payment: PaymentIn | None
    keys: JournalEntryKeys | None
    cloudevent: CloudEventIn | None


def parse_event(body: bytes, headers: dict[str, str]) -> IncomingEvent:
    """Read the body as a payment object or CloudEvent (structured or binary mode); 422 else."""
    document = _json(body)
    if "ce-specversion" in headers:
        document = {
            **{k[3:]: v for k, v in headers.items() if k.startswith("ce-")},
            "data": document,
        }
    if not isinstance(document, dict):
        raise InvalidInputError("body: must be a JSON object", status="invalid")
    if "specversion" not in document:
        return IncomingEvent(_model(PaymentIn, document, "body"), None, None)
    event = _model(CloudEventIn, document, "cloudevent")
    data = event.data
    if not isinstance(data, dict):
        raise InvalidInputError(
            "cloudevent.data: must be a JSON object (data_base64 is not supported)",
            status="invalid",
        )
    if "paymentDocument" in data or "hmsBillReference" in data:
        return IncomingEvent(_model(PaymentIn, data, "data"), None, event)
    if "AccountingDocument" in data:
        return IncomingEvent(None, _model(JournalEntryKeys, data, "data"), event)
    raise InvalidInputError(
        "cloudevent.data: carries neither a payment object (paymentDocument, hmsBillReference, "
        "amount, currency) nor journal entry keys (CompanyCode, FiscalYear, AccountingDocument)",
        status="invalid",
    )


def _json(body: bytes) -> Any:
    try:
        return json_body.parse(body, parse_float=Decimal)
    except json_body.UnreadableJson as exc:
        raise InvalidInputError(str(exc), status="invalid") from None


def _model(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(
            f"{where}: {describe_validation(exc.errors())}", status="invalid"
        ) from None


WebhookStatus = Literal["confirmed", "already_confirmed", "accepted", "unmatched", "mismatch"]


class WebhookAnswer(BaseModel):
    """The webhook's answer, one per outcome."""

    status: WebhookStatus
    event_id: int | None = None
    payment_document: str | None = None
    bill_id: str | None = None
    reasons: list[str] | None = None
    detail: str | None = None


class ClearingSyncResult(BaseModel):
    """What one clearing sync did."""

    status: Literal["succeeded", "failed", "skipped"]
    run_id: int | None = None
    bills_checked: int = 0
    payments_recorded: int = 0
    events_resolved: int = 0
    payments_rematched: int = 0
    reason: str | None = None
    error: str | None = None


class OpenBill(BaseModel):
    bill_id: str
    reference: str
    company_code: str
    sap_document_number: str | None
    fiscal_year: str | None
    bill_date: date
    currency: str
    net_total: str
    paid_amount: str
    outstanding_amount: str
    age_days: int
    ageing_bucket: str


class PaymentLine(BaseModel):
    payment_document: str
    payment_fiscal_year: str
    company_code: str
    bill_reference: str
    bill_id: str | None
    sap_document_number: str | None
    amount: str
    currency: str
    posting_date: date | None
    status: str
    source: str
    reasons: list[str]


class CurrencyTotals(BaseModel):
    currency: str
    open_bills: int
    outstanding_amount: str
    unmatched_payments: int
    unmatched_amount: str
    mismatched_payments: int
    mismatched_amount: str


class Reconciliation(BaseModel):
    """Bills posted and not fully paid, payments without a bill, mismatches, totals."""

    from_date: date | None
    to_date: date
    open_bills: list[OpenBill]
    unmatched_payments: list[PaymentLine]
    mismatches: list[PaymentLine]
    totals: list[CurrencyTotals]


# --- operators' decisions -------------------------------------------------------------------

PaymentStatus = Literal["unmatched", "mismatch", "confirmed", "accepted", "dismissed"]
DecisionAction = Literal["match", "accept", "dismiss"]
NOTE_MAX = 500


def note_problem(value: str) -> str | None:
    """What is wrong with a decision's note (already trimmed), or None."""
    if not value:
        return f"required: say why, in 1-{NOTE_MAX} characters"
    if len(value) > NOTE_MAX:
        return f"at most {NOTE_MAX} characters (got {len(value)})"
    if any(ord(c) < 32 and c not in "\n\t" for c in value) or "\x7f" in value:
        return "must not contain control characters"
    return None


def _checked_note(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str type says so
    value = value.strip()
    if (problem := note_problem(value)) is not None:
        raise ValueError(problem)
    return value


Note = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NOTE_MAX,
        description="Why: what was checked, and where (trimmed; required). Kept in the "
        "payment's audit trail.",
    ),
]
ExpectedStatus = Annotated[
    PaymentStatus | None,
    Field(
        description="The status the operator saw; if the payment has another one now, the "
        "decision is refused (409) instead of applied to a payment that changed meanwhile",
    ),
]


class DecisionIn(BaseModel):
    """An operator's decision about a payment: accept (a mismatch counts as paid) or dismiss
    (it does not count)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "note": "bank charges of 150.00 deducted; finance accepts (ticket FIN-231)",
                    "expected_status": "mismatch",
                }
            ]
        },
    )
    note: Note
    expected_status: ExpectedStatus = None

    @field_validator("note", mode="before")
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        return _checked_note(value)


class MatchIn(DecisionIn):
    """Attach a payment to a bill, named by its id or its HMIS reference; the payment is then
    judged against that bill as an incoming payment would be."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "bill_id": "B-1001",
                    "note": "reference mistyped by the bank (HMIS-2024-01234); same amount, "
                    "same payer",
                    "expected_status": "unmatched",
                }
            ]
        },
    )
    bill_id: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
        Field(description="The bill's id, or its HMIS reference (ids are tried first)"),
    ]

    @field_validator("bill_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters")
        return value


class DecisionView(BaseModel):
    """One entry of a payment's audit trail."""

    action: DecisionAction
    note: str
    actor: str = Field(description="Who decided: `api`, `cli` or `console`")
    request_id: str | None = Field(None, description="X-Request-ID of the API call")
    from_status: PaymentStatus
    to_status: PaymentStatus
    bill_id: str | None = Field(description="The bill the payment was attached to after it")
    at: datetime


class PaymentRecord(BaseModel):
    """A payment as recorded: one SAP payment document as it applies to one bill reference."""

    id: int
    company_code: str
    payment_document: str
    payment_fiscal_year: str
    bill_reference: str = Field(description="The HMIS reference the payment was reported with")
    bill_id: str | None = Field(description="The bill it is attached to, if any")
    sap_document_number: str | None = Field(
        description="The bill's SAP document as the payment named it"
    )
    amount: str
    currency: str
    posting_date: date | None
    status: PaymentStatus = Field(
        description="`confirmed` and `accepted` count towards the bill's paid amount; "
        "`unmatched` and `mismatch` wait for an operator; `dismissed` does not count"
    )
    reasons: list[str]
    source: str = Field(description="webhook, business_event or clearing_sync")
    note: str | None = Field(description="The sender's note")
    allowed_actions: list[DecisionAction] = Field(
        description="The decisions the payment's status allows now"
    )
    created_at: datetime
    updated_at: datetime


class PaymentDetail(PaymentRecord):
    """A payment with its audit trail, oldest decision first."""

    decisions: list[DecisionView]


class PaymentPage(BaseModel):
    items: list[PaymentRecord]
    next_cursor: str | None = None
