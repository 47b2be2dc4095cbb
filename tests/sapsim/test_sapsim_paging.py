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
