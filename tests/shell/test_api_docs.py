"""/docs and /redoc work with no internet access: every asset comes from the bridge itself."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

import app as app_package
from app.shell import api_docs
from app.shell.main import create_app
from tests.support.bridge import Bridge, make_settings, run_bridge

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(app_package.__file__).resolve().parent
PAGES = {
    "/docs": {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"},
    "/redoc": {"redoc.standalone.js", "favicon-32x32.png"},
}


class _References(HTMLParser):
    """Every src and href of a page, with the tag that carries it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, v) for k, v in attrs if k in ("src", "href") and v is not None]


def references(html: str) -> list[tuple[str, str]]:
    parser = _References()
    parser.feed(html)
    return parser.found


@pytest.fixture(scope="module")
def docs_bridge(sqlite_url: str) -> Iterator[Bridge]:
    """One bridge for the module: the pages and assets never touch the database, so one
    backend is enough (the parametrised `bridge` fixture would only repeat the same bytes)."""
    with run_bridge(make_settings(sqlite_url)) as running:
        yield running


@pytest.mark.parametrize("path", sorted(PAGES))
def test_pages_load_nothing_from_outside_the_bridge(docs_bridge: Bridge, path: str) -> None:
    page = httpx.get(docs_bridge.url + path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    # ReDoc's sidebar shows a logo from its vendor's CDN: the browser must refuse it
    policy = dict(
        d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    for directive in ("script-src", "style-src", "img-src", "connect-src", "font-src"):
        assert not re.search(r"https?:|\*", policy[directive]), (directive, policy[directive])
    assert not re.search(r"https?://", page.text), "the page names an outside URL"
    found = references(page.text)
    origin = urlsplit(docs_bridge.url)
    for tag, ref in found:
        target = urlsplit(urljoin(str(page.url), ref))
        assert (target.scheme, target.netloc) == (origin.scheme, origin.netloc), (tag, ref)
    assets = {
        PurePosixPath(urlsplit(ref).path).name: ref
        for tag, ref in found
        if urlsplit(ref).path.startswith("/docs-assets/")
    }
    assert set(assets) == PAGES[path]
    tags = {ref: tag for tag, ref in found}
    assert all(tags[ref] in ("script", "link") for ref in assets.values())
    assert ("a", "/console") in found, "no link to the operator console"


def test_swagger_ui_never_asks_the_online_validator(docs_bridge: Bridge) -> None:
    page = httpx.get(docs_bridge.url + "/docs").text
    assert '"validatorUrl": null' in page
    assert "url: '/openapi.json'" in page


@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_referenced_asset_is_served_cached_with_its_type(
    docs_bridge: Bridge, path: str
) -> None:
    page = httpx.get(docs_bridge.url + path)
    refs = [ref for _, ref in references(page.text) if ref.startswith("/docs-assets/")]
    assert refs
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for ref in refs:
        response = httpx.get(urljoin(str(page.url), ref))
        name = PurePosixPath(urlsplit(ref).path).name
        assert response.status_code == 200, (ref, response.status_code)
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type == expected_types[PurePosixPath(name).suffix], (ref, media_type)
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        body = (api_docs.ASSETS_DIR / name).read_bytes()
        assert response.content == body
        # the URL changes with the file, so a year's caching never serves a stale asset
        assert f"v={hashlib.sha256(body).hexdigest()[:16]}" in ref


def test_head_of_an_asset_has_no_body(docs_bridge: Bridge) -> None:
    response = httpx.head(docs_bridge.url + "/docs-assets/swagger-ui.css")
    assert response.status_code == 200
    assert response.content == b""
    size = (api_docs.ASSETS_DIR / "swagger-ui.css").stat().st_size
    assert int(response.headers["content-length"]) == size


@pytest.mark.parametrize("name", ["README.md", "swagger-ui-LICENSE.txt", "nothing.js", "%2e%2e"])
def test_only_the_listed_assets_are_served(docs_bridge: Bridge, name: str) -> None:
    response = httpx.get(f"{docs_bridge.url}/docs-assets/{name}")
    assert response.status_code == 404
    assert "the docs pages are /docs and /redoc" in response.json()["detail"]


@pytest.mark.parametrize("path", ["..%2Fapi_docs.py", "..%2F..%2Fmain.py", "%2e%2e%2fmain.py"])
def test_no_file_outside_the_list_is_reached(docs_bridge: Bridge, path: str) -> None:
    response = httpx.get(f"{docs_bridge.url}/docs-assets/{path}")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_the_oauth2_redirect_page_is_still_there(docs_bridge: Bridge) -> None:
    response = httpx.get(docs_bridge.url + "/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "window.opener.swaggerUIRedirectOauth2" in response.text
    assert not re.search(r"https?://", response.text)


def test_the_openapi_document_is_left_alone(docs_bridge: Bridge) -> None:
    served = httpx.get(docs_bridge.url + "/openapi.json")
    assert served.status_code == 200
    document = served.json()
    assert document == docs_bridge.app.openapi()
    assert not [p for p in document["paths"] if p.startswith(("/docs", "/redoc", "/console"))]
    assert "/console" not in json.dumps(document["info"])


async def test_pages_behind_a_proxy_prefix_point_under_it() -> None:
    transport = httpx.ASGITransport(app=create_app(), root_path="/bridge")
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
        for path, assets in PAGES.items():
            page = await client.get("/bridge" + path)
            assert page.status_code == 200, page.text
            refs = [ref for _, ref in references(page.text)]
            assert refs and all(ref.startswith("/bridge/") for ref in refs), refs
            assert "/bridge/console" in refs
            served = [ref for ref in refs if ref.startswith("/bridge/docs-assets/")]
            assert {PurePosixPath(urlsplit(ref).path).name for ref in served} == assets
            for ref in served:
                asset = await client.get(ref)
                assert asset.status_code == 200, ref
        swagger = (await client.get("/bridge/docs")).text
        assert "url: '/bridge/openapi.json'" in swagger


def _package_data_globs() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        globs: list[str] = tomllib.load(f)["tool"]["setuptools"]["package-data"]["app"]
    return globs


def test_the_wheel_takes_every_asset_and_its_licence() -> None:
    """The wheel holds what the package-data globs match (tests/ops/test_packaging.py builds one):
    each served asset, and every licence and notice beside them, must be matched."""
    assert api_docs.ASSETS_DIR.resolve().is_relative_to(PACKAGE)
    globs = _package_data_globs()
    files = sorted(p for p in api_docs.ASSETS_DIR.iterdir() if p.is_file())
    assert {p.name for p in files} >= set(api_docs.ASSETS) | {"README.md"}
    assert any("LICENSE" in p.name for p in files) and any("NOTICE" in p.name for p in files)
    for path in files:
        relative = PurePosixPath(path.resolve().relative_to(PACKAGE).as_posix())
        matched = [g for g in globs if len(PurePosixPath(g).parts) == len(relative.parts)]
        assert any(relative.match(g) for g in matched), f"{relative} is not in the wheel"


def test_the_readme_beside_the_assets_tells_their_versions_and_sums() -> None:
    readme = (api_docs.ASSETS_DIR / "README.md").read_text()
    for name in api_docs.ASSETS:
        digest = hashlib.sha256((api_docs.ASSETS_DIR / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}" in readme, f"README.md has an old sum for {name}"
    swagger = re.search(r"`swagger-ui-dist` (\d+\.\d+\.\d+)", readme)
    redoc = re.search(r"`redoc` (\d+\.\d+\.\d+)", readme)
    assert swagger and redoc
    bundle = (api_docs.ASSETS_DIR / "swagger-ui-bundle.js").read_text()
    assert f'PACKAGE_VERSION:"{swagger[1]}"' in bundle, "README.md names another Swagger UI"
    redoc_js = (api_docs.ASSETS_DIR / "redoc.standalone.js").read_text()
    assert f'" ReDoc Version: ","{redoc[1]}"' in redoc_js, "README.md names another ReDoc"
