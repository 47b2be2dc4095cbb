"""The payment webhook's OpenAPI entry: the headers it reads, how to sign a delivery (with one
worked example a middleware developer can reproduce), and a body schema for every answer."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.payments.schemas import JournalEntryKeys, PaymentIn, WebhookAnswer
from app.payments.security import TOLERANCE_SECONDS, WEBHOOK_BODY_LIMIT
from app.platform.openapi import outcome

#: A made-up secret and the signature it gives; tests/payments recomputes it with the verifier.
SIGNING_EXAMPLE = {
    "secret": "whsec_aG1pcy1zYXAtYnJpZGdlLWRvY3MtZXhhbXBsZS1rZXk=",
    "webhook-id": "msg_2Kx7TtUfNBbZ3xPqyAj8cRdLmW4",
    "webhook-timestamp": "1710496800",
    "body": '{"paymentDocument":"1400000017","hmsBillReference":"HMIS-2024-001234",'
    '"sapDocumentNumber":"0100000042","amount":"15000.00","currency":"LKR",'
    '"postingDate":"2024-03-15","paymentFiscalYear":"2024"}',
    "webhook-signature": "v1,Tv0d/KNuKsrvI4hsKpMffPhAY5kxkdYeDmqpyWorxqk=",
}
_SIGNED_CONTENT = ".".join(SIGNING_EXAMPLE[k] for k in ("webhook-id", "webhook-timestamp", "body"))

DESCRIPTION = f"""\
A payment object, or a CloudEvent 1.0 whose `data` is one: structured mode (the envelope in the
body) or binary mode (`ce-specversion`, `ce-id`, `ce-source`, `ce-type` headers, the body is the
`data`). A CloudEvent whose `data` holds journal entry keys (`CompanyCode`, `FiscalYear`,
`AccountingDocument`) is a business event: the bridge asks SAP what it cleared.

**Credentials**, checked against the raw body bytes before anything is parsed (the API keys are
not accepted here): a Standard Webhooks signature with the `Webhook Secret`, or HTTP Basic
(`Authorization: Basic base64(user:password)`) with `Webhook Username`/`Webhook Password`, as
SAP Event Mesh sends them.

**Signing (Standard Webhooks, `v1`)**

1. The bytes signed: `{{webhook-id}}.{{webhook-timestamp}}.{{body}}`, where body is the exact
   bytes sent (sign what you send; do not re-serialize the JSON afterwards).
2. The key: the `Webhook Secret` without its `whsec_` prefix, base64-decoded.
3. `webhook-signature: v1,` + base64(HMAC-SHA256(key, bytes signed)). Several signatures
   separated by spaces are accepted (a secret rotation); one must match.
4. `webhook-id`: unique per delivery, the same when a delivery is sent again.
   `webhook-timestamp`: Unix time in seconds, at most {TOLERANCE_SECONDS} s off the bridge's
   clock either way.

**Worked example** (a made-up secret):

* secret: `{SIGNING_EXAMPLE["secret"]}`
* `webhook-id: {SIGNING_EXAMPLE["webhook-id"]}`
* `webhook-timestamp: {SIGNING_EXAMPLE["webhook-timestamp"]}` (2024-03-15T10:00:00Z)
* body, exactly these bytes (UTF-8, no newline at the end):
  `{SIGNING_EXAMPLE["body"]}`
* bytes signed:

  ```
  {_SIGNED_CONTENT}
  ```
* header sent: `webhook-signature: {SIGNING_EXAMPLE["webhook-signature"]}`

Bodies: UTF-8 JSON, at most {WEBHOOK_BODY_LIMIT // 1024} KiB.
"""

#: The webhook's two ways in; the `webhook-id` and `webhook-timestamp` parameters go with the
#: signature. Installed into components by app.openapi.
SECURITY_SCHEMES = {
    "standardWebhooks": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": "Standard Webhooks `v1,<base64 HMAC-SHA256>` of "
        "`{webhook-id}.{webhook-timestamp}.{body}` with the Webhook Secret "
        "(see POST /webhooks/sap/payment)",
    },
    "webhookBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "SAP Integration - Webhook Username / Webhook Password",
    },
}


def _header(name: str, description: str, example: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
        "example": example,
    }


_EVENT_TYPE = "sap.s4.beh.journalentry.v1.JournalEntry.Created.v1"
_EVENT_ID = "b0f3c5d2-7e1a-4c8e-9f4b-2d6a1e0c9b7f"
HEADERS = [
    _header(
        "webhook-id",
        "Standard Webhooks: the delivery's id, unique per delivery and kept when it is sent "
        "again (a replay is answered `already_confirmed`)",
        SIGNING_EXAMPLE["webhook-id"],
        maxLength=255,
    ),
    _header(
        "webhook-timestamp",
        f"Standard Webhooks: Unix time of sending in seconds (±{TOLERANCE_SECONDS} s)",
        SIGNING_EXAMPLE["webhook-timestamp"],
        pattern="^[0-9]{1,12}$",
    ),
    _header(
        "ce-specversion",
        "binary-mode CloudEvents: the body is the event's `data`; needs `ce-id`, `ce-source` "
        "and `ce-type` too",
        "1.0",
        enum=["1.0"],
    ),
    _header(
        "ce-id", "binary-mode CloudEvents: the event id", "b0f3c5d2-7e1a-4c8e-9f4b-2d6a1e0c9b7f"
    ),
    _header("ce-source", "binary-mode CloudEvents: the sender", "/default/sap.s4.beh/244572008"),
    _header("ce-type", "binary-mode CloudEvents: the event type", _EVENT_TYPE),
]

_PAYMENT = json.loads(SIGNING_EXAMPLE["body"])
_CLOUD_EVENT = {
    "specversion": "1.0",
    "id": _EVENT_ID,
    "source": "/default/sap.s4.beh/244572008",
    "type": _EVENT_TYPE,
}
REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    PaymentIn.model_json_schema(),
                    {
                        "type": "object",
                        "description": "CloudEvents 1.0 envelope (specversion, id, source, "
                        "type) whose data is a payment object or journal entry keys",
                        "properties": {
                            "specversion": {"const": "1.0"},
                            "id": {"type": "string"},
                            "source": {"type": "string"},
                            "type": {"type": "string", "examples": [_EVENT_TYPE]},
                            "data": {
                                "oneOf": [
                                    PaymentIn.model_json_schema(),
                                    JournalEntryKeys.model_json_schema(),
                                ]
                            },
                        },
                        "required": ["specversion", "id", "source", "type", "data"],
                    },
                ]
            },
            "examples": {
                "payment": {
                    "summary": "a payment object (the worked signing example's body)",
                    "value": _PAYMENT,
                },
                "cloudevent": {
                    "summary": "a structured-mode CloudEvent carrying a payment",
                    "value": _CLOUD_EVENT | {"data": _PAYMENT},
                },
                "business_event": {
                    "summary": "an SAP business event: journal entry keys only",
                    "value": _CLOUD_EVENT
                    | {
                        "data": {
                            "CompanyCode": "1000",
                            "FiscalYear": "2024",
                            "AccountingDocument": "1400000017",
                        }
                    },
                },
            },
        }
    },
}

_CONFIRMED = {
    "status": "confirmed",
    "event_id": 17,
    "payment_document": "1400000017",
    "bill_id": "B-1001",
}
_ALREADY = {"status": "already_confirmed", "event_id": 17, "payment_document": "1400000017"}
_MISMATCH = {
    "status": "mismatch",
    "event_id": 18,
    "payment_document": "1400000018",
    "bill_id": "B-1001",
    "reasons": ["currency USD differs from the bill's LKR"],
}
_UNMATCHED = {
    "status": "unmatched",
    "event_id": 19,
    "payment_document": "1400000019",
    "reasons": ["no bill with reference HMIS-2024-009999"],
}
_ACCEPTED = {
    "status": "accepted",
    "event_id": 20,
    "detail": "stored; the bridge now asks SAP what this journal entry cleared",
}
_UNAUTHORIZED = {
    "detail": "no webhook-signature matches the body (wrong secret, or the body was altered)",
    "status": "unauthorized",
}
_INVALID = {"detail": "body: amount: Input should be greater than 0", "status": "invalid"}
_TOO_LARGE = {"detail": f"request body is larger than {WEBHOOK_BODY_LIMIT} bytes"}
_UNAVAILABLE = {"detail": "the database is unavailable; nothing was stored, please retry"}


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class WebhookConfirmed(WebhookAnswer):
    """200: the payment counts against its bill; `already_confirmed`: this delivery, event or
    payment document was recorded before, nothing changed."""

    model_config = _examples(_CONFIRMED, _ALREADY)
    status: Literal["confirmed", "already_confirmed"]


class WebhookMismatch(WebhookAnswer):
    """200: stored and flagged for an operator; `reasons` says what disagrees."""

    model_config = _examples(_MISMATCH)
    status: Literal["mismatch"]
    event_id: int
    payment_document: str
    bill_id: str
    reasons: list[str]


class WebhookUnmatched(WebhookAnswer):
    """202: stored; no posted bill has the reference yet, matched when one posts."""

    model_config = _examples(_UNMATCHED)
    status: Literal["unmatched"]
    event_id: int
    payment_document: str
    reasons: list[str]


class WebhookAccepted(WebhookAnswer):
    """202: a business event, stored; the bridge asks SAP next what it cleared."""

    model_config = _examples(_ACCEPTED)
    status: Literal["accepted"]
    event_id: int
    detail: str


class WebhookRefusal(BaseModel):
    """A refusal (401, 413, 422, 503): `detail` says what to do."""

    model_config = _examples(_UNAUTHORIZED, _INVALID, _TOO_LARGE, _UNAVAILABLE)
    detail: str = Field(min_length=1)
    status: Literal["unauthorized", "invalid"] | None = None


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: outcome(
        "`confirmed`, `already_confirmed`, or `mismatch` (stored, flagged)",
        _CONFIRMED,
        WebhookConfirmed | WebhookMismatch,
        already_confirmed=_ALREADY,
        mismatch=_MISMATCH,
    ),
    202: outcome(
        "`unmatched` (no bill yet), or `accepted` (business event: SAP is asked next)",
        _UNMATCHED,
        WebhookUnmatched | WebhookAccepted,
        accepted=_ACCEPTED,
    ),
    401: outcome(
        "bad or missing signature or credentials, or a stale timestamp",
        _UNAUTHORIZED,
        WebhookRefusal,
    ),
    413: outcome(f"body over {WEBHOOK_BODY_LIMIT // 1024} KiB", _TOO_LARGE, WebhookRefusal),
    422: outcome("malformed body; `detail` names the field", _INVALID, WebhookRefusal),
    503: outcome(
        "database unavailable; nothing stored, send again (`Retry-After`)",
        _UNAVAILABLE,
        WebhookRefusal,
    ),
}

OPENAPI_EXTRA = {
    "parameters": HEADERS,
    "requestBody": REQUEST_BODY,
    "security": [{"standardWebhooks": []}, {"webhookBasic": []}],
    "x-signing-example": SIGNING_EXAMPLE | {"signed-content": _SIGNED_CONTENT},
}
