"""Goods receipts from `API_MATERIAL_DOCUMENT_SRV` (OData V2), read page by page.

`PostingDate` lives on `A_MaterialDocumentHeader`, not on the item, so the window filters
headers and expands `to_MaterialDocumentItem`, selecting only the fields the audit uses.

Paging: the first request asks for `$inlinecount=allpages`. When SAP gives the total, the other
pages are fetched by `$top`/`$skip`, several at once (at most `in_flight` pages, which also
bounds memory); a page SAP cuts short is continued through its `__next` link. When SAP cuts the
first page below our `$top`, its size becomes the page size, so the pages stay parallel.
Without a total the pages are read one after another until one comes back short.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from app.config.service import BridgeConfig
from app.sap import odata
from app.sap.client import SapClient
from app.sap.errors import SapError

SERVICE_PATH = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
HEADER_SET = "A_MaterialDocumentHeader"
ITEMS = "to_MaterialDocumentItem"
HEADER_FIELDS = ("MaterialDocumentYear", "MaterialDocument", "PostingDate")
ITEM_FIELDS = (
    "MaterialDocumentYear",
    "MaterialDocument",
    "MaterialDocumentItem",
    "Material",
    "Plant",
    "GoodsMovementType",
    "QuantityInBaseUnit",
    "MaterialBaseUnit",
    "GoodsMovementIsCancelled",
    "ReversedMaterialDocumentYear",
    "ReversedMaterialDocument",
    "ReversedMaterialDocumentItem",
)
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 5000
OPERATION = "material_document.read"


@dataclass(frozen=True, slots=True)
class GoodsMovementItem:
    """One material document item, typed: quantities are Decimal in the material's base unit."""

    document: str
    year: str
    item: str
    posting_date: date
    material: str
    plant: str
    movement_type: str
    quantity: Decimal
    unit: str
    is_cancelled: bool
    reversed_reference: str | None

    @property
    def reference(self) -> str:
        """`5000000123/2024/0001`: document, year and 4-digit item number."""
        return reference(self.document, self.year, self.item)


@dataclass(frozen=True, slots=True)
class GoodsMovementPage:
    """What one read produced: its items, how many headers and HTTP pages it took."""

    items: list[GoodsMovementItem]
    headers: int
    http_pages: int


@dataclass
class ReadStats:
    """Filled in while reading: SAP's total of headers, pages planned and read."""

    total_headers: int | None = None
    pages_planned: int | None = None
    http_pages: int = 0
    headers: int = 0


def reference(document: str, year: str, item: str) -> str:
    return f"{document.strip()}/{year.strip()}/{item.strip().zfill(4)}"


def header_params(
    from_date: date, to_date: date, *, top: int, skip: int = 0, count: bool = False
) -> dict[str, str | int | None]:
    """The query of one page of headers posted in [from_date, to_date] with their items."""
    window = (
        f"PostingDate ge {odata.literal(from_date)} and "
        f"PostingDate lt {odata.literal(to_date + timedelta(days=1))}"
    )
    select = ",".join([*HEADER_FIELDS, *(f"{ITEMS}/{name}" for name in ITEM_FIELDS)])
    return {
        "$filter": window,
        "$expand": ITEMS,
        "$select": select,
        "$orderby": "MaterialDocumentYear,MaterialDocument",
        "$top": top,
        "$skip": skip or None,
        "$inlinecount": "allpages" if count else None,
    }


def header_url(from_date: date, to_date: date, **kwargs: Any) -> str:
    return f"{SERVICE_PATH}/{HEADER_SET}?{odata.query(header_params(from_date, to_date, **kwargs))}"


async def read_goods_movements(
    sap: SapClient,
    config: BridgeConfig,
    from_date: date,
    to_date: date,
    *,
    stats: ReadStats | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    in_flight: int | None = None,
) -> AsyncGenerator[GoodsMovementPage, None]:
    """Yield every page of goods movements posted in the window, in document order.

    At most `in_flight` pages (default: `Max Concurrent Calls`) are requested or held at once.
    Raises the `SapError` of the first page that fails.
    """
    stats = stats if stats is not None else ReadStats()
    width = max(1, in_flight or config.integer("Max Concurrent Calls"))
    reader = _Reader(sap, config, from_date, to_date)
    first = await reader.chunk(header_url(from_date, to_date, top=page_size, count=True))
    stats.total_headers = reader.count
    size = reader.first_size if reader.cut_short else page_size
    yield _tally(stats, first)
    if reader.count is None:
        if first.headers < page_size:
            return
        async for page in reader.sequential(first.headers, size):
            yield _tally(stats, page)
        return
    skips = range(first.headers if reader.cut_short else size, reader.count, max(size, 1))
    stats.pages_planned = 1 + len(skips)
    fetchers = (reader.at(skip, size) for skip in skips)
    async with aclosing(_in_order(fetchers, width)) as pages:
        async for page in pages:
            yield _tally(stats, page)


def _tally(stats: ReadStats, page: GoodsMovementPage) -> GoodsMovementPage:
    stats.http_pages += page.http_pages
    stats.headers += page.headers
    return page


class _Reader:
    def __init__(self, sap: SapClient, config: BridgeConfig, from_date: date, to_date: date):
        self.sap, self.config = sap, config
        self.from_date, self.to_date = from_date, to_date
        self.count: int | None = None
        self._seen = False
        self.first_size = 0
        self.cut_short = False

    def at(self, skip: int, size: int) -> Callable[[], Awaitable[GoodsMovementPage]]:
        url = header_url(self.from_date, self.to_date, top=size, skip=skip)
        return lambda: self.chunk(url)

    async def chunk(self, url: str) -> GoodsMovementPage:
        """One `$top`/`$skip` request, continued through `__next` until SAP says it is done."""
        items: list[GoodsMovementItem] = []
        headers = pages = 0
        next_url: str | None = url
        while next_url is not None:
            page = odata.parse_page(
                await self.sap.get_json(self.config, next_url, operation=OPERATION)
            )
            if not self._seen:
                self._seen, self.count = True, page.count
                self.first_size, self.cut_short = len(page.results), page.next_url is not None
            pages += 1
            headers += len(page.results)
            for header in page.results:
                items.extend(parse_header_items(header))
            next_url = (
                odata.rebase_next(page.next_url, f"{SERVICE_PATH}/") if page.next_url else None
            )
        return GoodsMovementPage(items, headers, pages)

    async def sequential(self, skip: int, size: int) -> AsyncIterator[GoodsMovementPage]:
        """Without a total: read on until a page comes back shorter than asked."""
        while True:
            page = await self.at(skip, size)()
            if page.headers == 0:
                return
            yield page
            if page.headers < size:
                return
            skip += page.headers


async def _in_order(
    fetchers: Iterator[Callable[[], Awaitable[GoodsMovementPage]]], width: int
) -> AsyncGenerator[GoodsMovementPage, None]:
    """Run up to `width` fetches at once and yield their pages in request order."""
    pending: deque[asyncio.Task[GoodsMovementPage]] = deque()
    try:
        for fetch in fetchers:
            pending.append(asyncio.ensure_future(fetch()))
            if len(pending) >= width:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def parse_header_items(header: dict[str, Any]) -> list[GoodsMovementItem]:
    """The typed items of one expanded header; raises SapError on an unreadable one."""
    try:
        posting = odata.parse_date(header["PostingDate"])
        expanded = header.get(ITEMS) or {}
        rows = expanded.get("results", []) if isinstance(expanded, dict) else expanded
        return [_item(row, header, posting) for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        document = header.get("MaterialDocument", "?") if isinstance(header, dict) else "?"
        raise SapError(
            f"unreadable material document {document} from SAP ({type(exc).__name__}: {exc})"
        ) from None


def _item(row: dict[str, Any], header: dict[str, Any], posting: date) -> GoodsMovementItem:
    reversed_doc = (row.get("ReversedMaterialDocument") or "").strip()
    reversed_ref = None
    if reversed_doc:
        reversed_ref = reference(
            reversed_doc,
            row.get("ReversedMaterialDocumentYear") or "",
            row.get("ReversedMaterialDocumentItem") or "",
        )
    return GoodsMovementItem(
        document=str(row.get("MaterialDocument") or header["MaterialDocument"]),
        year=str(row.get("MaterialDocumentYear") or header["MaterialDocumentYear"]),
        item=str(row["MaterialDocumentItem"]),
        posting_date=posting,
        material=str(row.get("Material") or ""),
        plant=str(row.get("Plant") or ""),
        movement_type=str(row.get("GoodsMovementType") or "").strip(),
        quantity=odata.decimal(row.get("QuantityInBaseUnit")),
        unit=str(row.get("MaterialBaseUnit") or ""),
        is_cancelled=bool(row.get("GoodsMovementIsCancelled")),
        reversed_reference=reversed_ref,
    )
