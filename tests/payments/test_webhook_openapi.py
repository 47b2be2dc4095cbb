"""The webhook's OpenAPI entry: a signing example to reproduce, answers as documented."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator
from standardwebhooks.webhooks import Webhook

from app.payments.security import sign, verify_signature
from tests.payments.conftest import WEBHOOK, cloud_event, payment, post, push_bill, signed
from tests.support.bridge import Bridge


async def _document(bridge: Bridge) -> dict[str, Any]:
    async with bridge.client(None) as client:
        return (await client.get("/openapi.json")).json()


async def test_documented_signing_example_is_what_the_verifier_computes(bridge):
    operation = (await _document(bridge))["paths"][WEBHOOK]["post"]
    example = operation["x-signing-example"]
    webhook_id, stamp, body = example["webhook-id"], example["webhook-timestamp"], example["body"]
    assert example["signed-content"] == f"{webhook_id}.{stamp}.{body}"
    assert (
        sign(example["secret"], webhook_id, int(stamp), body.encode())
        == (example["webhook-signature"])
    )
    headers = {k: example[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    verified = verify_signature(example["secret"], headers, body.encode(), now=int(stamp))
    assert verified == webhook_id
    reference = Webhook(example["secret"]).sign(
        webhook_id, datetime.fromtimestamp(int(stamp), UTC), body
    )
    assert reference == example["webhook-signature"]
    for value in example.values():  # the description shows the same example
        assert value in operation["description"]
    documented = operation["requestBody"]["content"]["application/json"]["examples"]
    assert documented["payment"]["value"] == json.loads(body)
    async with bridge.client(None) as client:  # and the bridge takes that body
        response = await post(client, *signed(body.encode()))
    assert response.status_code == 202, response.text


async def test_every_answer_matches_its_documented_schema(bridge):
    document = await _document(bridge)
    responses = document["paths"][WEBHOOK]["post"]["responses"]
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    confirmed = payment("HMIS-1", "1400000001", "5000.00", doc["sap_document_number"])
    keys = {"CompanyCode": "1000", "FiscalYear": "2024", "AccountingDocument": "1400000099"}
    async with bridge.client(None) as client:
        answers = {
            "confirmed": await post(client, *signed(confirmed)),
            "already_confirmed": await post(client, *signed(confirmed)),
            "mismatch": await post(
                client, *signed(payment("HMIS-1", "1400000002", "1.00", currency="USD"))
            ),
            "unmatched": await post(client, *signed(payment("HMIS-NONE", "1400000003"))),
            "accepted": await post(client, *signed(cloud_event(keys))),
            "unauthorized": await client.post(WEBHOOK, json=confirmed),
            "invalid": await post(client, *signed({"amount": "1.00"})),
            "too large": await post(client, *signed(b" " * 300_000 + b"{}")),
        }
    statuses = {name: a.status_code for name, a in answers.items()}
    assert statuses == {
        "confirmed": 200,
        "already_confirmed": 200,
        "mismatch": 200,
        "unmatched": 202,
        "accepted": 202,
        "unauthorized": 401,
        "invalid": 422,
        "too large": 413,
    }
    for name, answer in answers.items():
        schema = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": document["components"]})
        errors = [e.message for e in validator.iter_errors(answer.json())]
        assert not errors, (name, answer.json(), errors)
        if name in ("confirmed", "already_confirmed", "mismatch", "unmatched", "accepted"):
            assert answer.json()["status"] == name
