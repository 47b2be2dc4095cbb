"""The simulated API_MATERIAL_DOCUMENT_SRV: SAP's wire format, paging, errors, seeded data."""

from __future__ import annotations

from datetime import date

import httpx

from sapsim import material_data

ROOT = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
AUTH = ("sim-client", "sim-secret")
JSON = {"Accept": "application/json"}
WINDOW = (
    "PostingDate ge datetime'2024-03-01T00:00:00' and PostingDate lt datetime'2024-03-11T00:00:00'"
)


def get(sim: httpx.Client, entity_set: str, **params: str) -> httpx.Response:
    return sim.get(f"{ROOT}/{entity_set}", params=params, auth=AUTH, headers=JSON)


def test_headers_expand_items_in_odata_v2_json(sim: httpx.Client) -> None:
    sim.post("/sim/materials/generate", json={"seed": 1, "items": 200}).raise_for_status()
    response = get(
        sim,
        "A_MaterialDocumentHeader",
        **{
            "$filter": WINDOW,
            "$expand": "to_MaterialDocumentItem",
            "$inlinecount": "allpages",
            "$select": "MaterialDocument,PostingDate,to_MaterialDocumentItem/Material,"
            "to_MaterialDocumentItem/QuantityInBaseUnit",
            "$top": "50",
            "$orderby": "MaterialDocumentYear,MaterialDocument",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()["d"]
    assert isinstance(body["__count"], str) and int(body["__count"]) > 0
    header = body["results"][0]
    assert header["PostingDate"].startswith("/Date(") and "MaterialDocumentYear" not in header
    item = header["to_MaterialDocumentItem"]["results"][0]
    assert set(item) == {"__metadata", "Material", "QuantityInBaseUnit"}
    assert isinstance(item["QuantityInBaseUnit"], str) and "." in item["QuantityInBaseUnit"]
    materials = {
        i["Material"] for h in body["results"] for i in h["to_MaterialDocumentItem"]["results"]
    }
    assert any(len(m) == 18 and m.startswith("0000") for m in materials)


def test_unknown_properties_are_sap_400s(sim: httpx.Client) -> None:
    sim.post("/sim/materials/generate", json={"seed": 1, "items": 50}).raise_for_status()
    for entity_set, params in (
        ("A_MaterialDocumentItem", {"$filter": "PostingDate ge datetime'2024-03-01T00:00:00'"}),
        ("A_MaterialDocumentHeader", {"$select": "MaterialDocument,Quantity"}),
        (
            "A_MaterialDocumentHeader",
            {"$expand": "to_MaterialDocumentItem", "$select": "to_MaterialDocumentItem/BaseUnit"},
        ),
    ):
        response = get(sim, entity_set, **params)
        assert response.status_code == 400
        error = response.json()["error"]
        assert "not found in type" in error["message"]["value"]
        assert error["message"]["lang"] == "en" and "transactionid" in error["innererror"]


def test_server_paging_next_links_and_injected_faults(sim: httpx.Client) -> None:
    sim.post("/sim/materials/generate", json={"seed": 2, "items": 100}).raise_for_status()
    sim.put("/sim/materials/settings", json={"page_size": 7}).raise_for_status()
    seen, url, params = (
        [],
        f"{ROOT}/A_MaterialDocumentHeader",
        {"$top": "20", "$select": "MaterialDocument"},
    )
    while url:
        body = sim.get(url, params=params, auth=AUTH, headers=JSON).json()["d"]
        seen += [h["MaterialDocument"] for h in body["results"]]
        url, params = body.get("__next"), None
    assert len(seen) == 20 and seen == sorted(seen)
    sim.put("/sim/materials/faults", json={"page": 2, "status": 503}).raise_for_status()
    assert get(sim, "A_MaterialDocumentHeader", **{"$top": "7", "$skip": "7"}).status_code == 503
    assert get(sim, "A_MaterialDocumentHeader", **{"$top": "7", "$skip": "7"}).status_code == 200
    assert sim.get(f"{ROOT}/A_MaterialDocumentHeader", headers=JSON).status_code == 401


def test_generation_is_deterministic_with_ground_truth() -> None:
    one = material_data.generate(seed=42, items=1000)
    two = material_data.generate(seed=42, items=1000)
    assert [h.document for h in one.headers] == [h.document for h in two.headers]
    truth = material_data.expected(one, date(2024, 3, 1), date(2024, 4, 5))
    kinds = {i.kind for h in one.headers for i in h.items}
    assert kinds == {"receipt", "partial_reversal", "return", "cancelled", "cancellation", "issue"}
    assert len({i.plant for h in one.headers for i in h.items}) == 3
    assert truth["total_document_items"] == (
        truth["matched_items"] + truth["unmatched_items"] + truth["inactive_items"]
    )
    assert truth["items_read"] == one.item_count
