import html
import re
from urllib.parse import urlsplit

import pytest

from sapsim import SimConfig


@pytest.fixture
def sim_config():
    return SimConfig(page_cap=3)


async def _follow(sap, params):
    pages, response = [], await sap.cube(params)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json()["d"])
        link = pages[-1].get("__next")
        if not link:
            return pages
        url = urlsplit(link)
        assert url.path.endswith("/A_OperationalAcctgDocItemCube") and "$skiptoken=" in url.query
        response = await sap.client.get(
            f"{url.path}?{url.query}", auth=sap.AUTH, headers={"Accept": "application/json"}
        )


async def test_server_page_cap_gives_next_links_and_inlinecount(sap):
    for i in range(4):
        await sap.post_one(ref=f"B-{i}")

    pages = await _follow(sap, {"$inlinecount": "allpages", "$filter": "CompanyCode eq '1000'"})

    assert [len(p["results"]) for p in pages] == [3, 3, 2]
    assert {p["__count"] for p in pages} == {"8"}
    keys = [
        (r["AccountingDocument"], r["AccountingDocumentItem"]) for p in pages for r in p["results"]
    ]
    assert len(set(keys)) == 8
    assert keys == sorted(keys)


async def test_top_and_skip_are_honoured_across_pages(sap):
    for i in range(4):
        await sap.post_one(ref=f"B-{i}")

    pages = await _follow(sap, {"$top": "5", "$skip": "1", "$orderby": "AccountingDocument desc"})

    assert [len(p["results"]) for p in pages] == [3, 2]
    documents = [r["AccountingDocument"] for p in pages for r in p["results"]]
    assert documents == ["0100000004", "0100000003", "0100000003", "0100000002", "0100000002"]


async def test_foreign_next_host_replaces_scheme_and_host_of_every_next_link(sap, client):
    for i in range(2):
        await sap.post_one(ref=f"B-{i}")
    await client.post("/sim/materials/generate", json={"seed": 1, "items": 20})
    await client.put("/sim/materials/settings", json={"page_size": 2})
    params = {"$filter": "CompanyCode eq '1000'", "$select": "AccountingDocument"}
    materials = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader"

    async def links():
        cube = (await sap.cube(params)).json()["d"]["__next"]
        atom = (await sap.cube(params, headers={"Accept": "application/atom+xml"})).text
        [atom_next] = re.findall(r'<link href="([^"]+)" rel="next"/>', atom)
        headers = {"Accept": "application/json"}
        goods = await client.get(materials, params={"$top": "5"}, auth=sap.AUTH, headers=headers)
        return [
            urlsplit(link) for link in (cube, html.unescape(atom_next), goods.json()["d"]["__next"])
        ]

    own = await links()
    settings = await client.put("/sim/faults", json={"foreign_next_host": "http://evil.example:9"})
    foreign = await links()
    await client.post("/sim/reset")

    assert settings.json()["foreign_next_host"] == "http://evil.example:9"
    assert {(u.scheme, u.netloc) for u in own} == {("http", "sap.test")}
    assert {(u.scheme, u.netloc) for u in foreign} == {("http", "evil.example:9")}
    assert [(u.path, u.query) for u in foreign] == [(u.path, u.query) for u in own]
    assert (await client.get("/sim/faults")).json()["foreign_next_host"] is None


async def test_foreign_next_host_must_be_a_scheme_and_host(client):
    for bad in ("evil.example", "http://evil.example/path", "http://evil.example?x=1"):
        response = await client.put("/sim/faults", json={"foreign_next_host": bad})
        assert response.status_code == 422, bad
