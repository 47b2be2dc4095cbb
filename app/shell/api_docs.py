"""`/docs` (Swagger UI) and `/redoc` served with no internet access: a hospital network often has
none, and FastAPI's own pages load their JavaScript and CSS from a public CDN (blank pages there).

The assets are vendored in `app/shell/static/docs/` (versions, licences and how to refresh them
in its README.md) and served from the bridge itself under `/docs-assets/`. Each URL carries a
digest of its file, so the assets can be cached for a year and a refreshed file is still
fetched anew. Both pages link to the operator console; the link lives in the HTML, never in
the OpenAPI document, which these routes leave untouched (none of them is in the schema).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

ASSETS_DIR = Path(__file__).parent / "static" / "docs"
ASSETS_PATH = "/docs-assets"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
CONSOLE_PATH = "/console"

#: The only files served, with their content types (not guessed: `mimetypes` differs by machine).
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
ASSET_CACHE = "public, max-age=31536000, immutable"
# the pages name the assets' digests: a browser must ask again for them after an upgrade
PAGE_CACHE = "no-cache"
# The browser itself refuses anything from elsewhere: ReDoc's sidebar, for one, shows a logo from
# its vendor's CDN (hidden when it fails to load). The inline parts are FastAPI's start-up script
# and the styles both UIs inject; ReDoc runs its search in a blob: worker.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
)

# Swagger UI's default sends the document to validator.swagger.io for a badge: never from here
_SWAGGER_DEFAULTS: dict[str, Any] = {"validatorUrl": None}

_NAV_STYLE = """<style>
body{margin:0}
.bridge-nav{display:flex;gap:1em;align-items:center;padding:6px 16px;font:14px/1.4 sans-serif;
background:#1b2a3a;color:#fff}
.bridge-nav a{color:#fff;font-weight:bold}
</style>"""

router = APIRouter()


@cache
def _digest(name: str) -> str:
    return hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest()[:16]


def asset_url(root: str, name: str) -> str:
    """The URL of one vendored asset, with its digest (the browser caches it for a year)."""
    return f"{root}{ASSETS_PATH}/{name}?v={_digest(name)}"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _with_console_link(page: HTMLResponse, root: str, what: str) -> HTMLResponse:
    html = bytes(page.body).decode()
    if "<body>" not in html:  # FastAPI changed its template: fail the tests, not silently
        raise RuntimeError("the docs page has no <body> to put the console link in")
    nav = (
        f'{_NAV_STYLE}\n<nav class="bridge-nav"><span>hmis-sap-bridge · {what}</span>'
        f'<a href="{root}{CONSOLE_PATH}">Operator console</a></nav>'
    )
    return HTMLResponse(
        html.replace("<body>", f"<body>\n{nav}", 1),
        headers={"Cache-Control": PAGE_CACHE, "Content-Security-Policy": PAGE_CSP},
    )


@router.get(DOCS_PATH, include_in_schema=False)
async def swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    page = get_swagger_ui_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=asset_url(root, "swagger-ui-bundle.js"),
        swagger_css_url=asset_url(root, "swagger-ui.css"),
        swagger_favicon_url=asset_url(root, "favicon-32x32.png"),
        oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=_SWAGGER_DEFAULTS | (app.swagger_ui_parameters or {}),
    )
    return _with_console_link(page, root, "API reference (Swagger UI)")


@router.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_PATH, include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    page = get_redoc_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=asset_url(root, "redoc.standalone.js"),
        redoc_favicon_url=asset_url(root, "favicon-32x32.png"),
        with_google_fonts=False,
    )
    return _with_console_link(page, root, "API reference (ReDoc)")


@router.api_route(ASSETS_PATH + "/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def docs_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no docs asset {name!r}; the docs pages are /docs and /redoc")
    return FileResponse(
        ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
    )
