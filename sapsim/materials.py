"""Simulated `API_MATERIAL_DOCUMENT_SRV` (OData V2), read-only, typed from the real EDMX.

* `GET /sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader` and
  `.../A_MaterialDocumentItem`: `$filter` (on the entity type's own properties only, like SAP:
  `PostingDate` on the item set is a 400), `$select` (also `to_MaterialDocumentItem/Prop`),
  `$expand=to_MaterialDocumentItem`, `$orderby`, `$top`, `$skip`, `$inlinecount=allpages`;
  pages are cut at the server page size with a `__next` link carrying `$skiptoken`.
* `$metadata` serves the EDMX itself.
* Control routes under `/sim/materials`: `POST /generate` (seeded data, returns the HMIS item
  master to load), `GET /expected` (ground truth of a window), `PUT /settings` (page latency,
  server page size), `PUT /faults` (answer 400 or 503 for page N), `GET /stats`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sapsim import material_data
from sapsim.odata_filter import FilterError, UnknownProperty, parse_filter
from sapsim.odata_query import (
    ODataError,
    ODataService,
    edmx_response,
    error_response,
    load_service,
    next_base_url,
    serialize_value,
)
from sapsim.specs import MATERIAL_DOCUMENT_EDMX
from sapsim.state import SimState, StateDep, get_state

SERVICE = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
NAMESPACE = "API_MATERIAL_DOCUMENT_SRV"
HEADER_TYPE, ITEM_TYPE = "A_MaterialDocumentHeaderType", "A_MaterialDocumentItemType"
NAV_ITEMS = "to_MaterialDocumentItem"
_EPOCH = datetime(1970, 1, 1)

router = APIRouter()


def service() -> ODataService:
    return load_service(NAMESPACE, MATERIAL_DOCUMENT_EDMX)


TYPES = {name: t.property_types for name, t in service().entity_types.items()}
PROPS = {name: t.properties for name, t in service().entity_types.items()}


class Settings(BaseModel):
    """Body of `PUT /sim/materials/settings`."""

    latency_ms: int | None = Field(default=None, ge=0)
    page_size: int | None = Field(default=None, ge=1)


class PageFault(BaseModel):
    """Body of `PUT /sim/materials/faults`: answer `status` for page `page` (1-based), `times`
    times (`null` until cleared); `page: null` clears it."""

    page: int | None = Field(default=None, ge=1)
    status: int = 503
    times: int | None = 1


class GenerateRequest(BaseModel):
    seed: int = 1
    items: int = Field(default=500, ge=1, le=1_000_000)
    start: date = date(2024, 3, 1)
    days: int = Field(default=30, ge=1, le=3660)
    plants: list[str] = Field(default_factory=lambda: ["1710", "1720", "1010"])
    code_field: str = Field(default="code", pattern="^(code|barcode)$")
    extra_hmis_items: int = Field(default=20, ge=0, le=1_000_000)


@dataclass
class MaterialsState:
    """Documents served and the knobs of this service (reset with the simulator)."""

    dataset: material_data.Dataset | None = None
    latency_ms: int = 0
    page_size: int | None = None
    fault: PageFault | None = None
    requests: int = 0
    faults_served: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    header_rows: list[dict[str, Any]] = field(default_factory=list)
    _item_rows: list[dict[str, Any]] | None = None
    cache: OrderedDict[tuple[str, str, str], list[int]] = field(default_factory=OrderedDict)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def load(self, dataset: material_data.Dataset) -> None:
        self.dataset = dataset
        self.header_rows = [_header_row(h) for h in dataset.headers]
        self._item_rows = None
        self.cache.clear()

    @property
    def item_rows(self) -> list[dict[str, Any]]:
        """Rows of the item set, built on first use (they are large)."""
        if self._item_rows is None:
            items = self.dataset.headers if self.dataset else []
            self._item_rows = [_item_row(i) for h in items for i in h.items]
        return self._item_rows


def materials_state(sim: SimState) -> MaterialsState:
    state = sim.extra.get("materials")
    if state is None:
        state = sim.extra["materials"] = MaterialsState()
    return state


# --- rows: typed values, as the filter parser wants them ------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _header_row(header: material_data.SimHeader) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(TYPES[HEADER_TYPE])
    row.update(
        MaterialDocumentYear=header.year,
        MaterialDocument=header.document,
        InventoryTransactionType="",
        DocumentDate=_midnight(header.posting_date),
        PostingDate=_midnight(header.posting_date),
        CreationDate=_midnight(header.posting_date),
        CreatedByUser="CC0000000001",
        MaterialDocumentHeaderText="",
        ReferenceDocument="",
        GoodsMovementCode="01",
    )
    row["_items"] = header.items
    return row


def _item_row(item: material_data.SimItem) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(TYPES[ITEM_TYPE])
    reverses = item.reverses
    quantity = item.quantity.quantize(Decimal("0.001"))  # Edm.Decimal(13,3), as SAP shows it
    row.update(
        MaterialDocumentYear=item.year,
        MaterialDocument=item.document,
        MaterialDocumentItem=str(item.item),
        Material=item.material.sap,
        Plant=item.plant,
        StorageLocation="101",
        Batch="",
        GoodsMovementType=item.movement_type,
        InventoryStockType="01",
        MaterialBaseUnit=item.material.unit,
        QuantityInBaseUnit=quantity,
        EntryUnit=item.material.unit,
        QuantityInEntryUnit=quantity,
        CompanyCodeCurrency="LKR",
        GdsMvtExtAmtInCoCodeCrcy=Decimal("0.000"),
        FiscalYear=item.year,
        GoodsMovementIsCancelled=item.cancelled,
        IsCompletelyDelivered=False,
        ReversedMaterialDocumentYear=reverses.year if reverses else "",
        ReversedMaterialDocument=reverses.document if reverses else "",
        ReversedMaterialDocumentItem=str(reverses.item) if reverses else "",
    )
    return row


def _json_value(entity_type: str, name: str, value: Any) -> Any:
    return serialize_value(PROPS[entity_type][name], value)


# --- errors -----------------------------------------------------------------------------------


class _BadRequest(ODataError):
    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def sap_error(request: Request, status: int, message: str) -> Response:
    """SAP Gateway's error envelope (shared with the other simulated OData services)."""
    return error_response(request, NAMESPACE, ODataError(status, message))


# --- the query ------------------------------------------------------------------------------


@dataclass
class _Query:
    entity_type: str
    filter: str
    orderby: list[tuple[str, bool]]
    select: set[str] | None
    nav_select: set[str] | None
    expand: bool
    top: int | None
    skip: int
    count: bool


def _parse_query(request: Request, entity_type: str) -> _Query:
    params = request.query_params
    props = TYPES[entity_type]
    expand = [e.strip() for e in params.get("$expand", "").split(",") if e.strip()]
    for name in expand:
        if entity_type != HEADER_TYPE or name != NAV_ITEMS:
            raise _BadRequest(f"Property '{name}' not found in type '{entity_type}'.")
    select, nav_select = _parse_select(params.get("$select"), entity_type, bool(expand))
    orderby = []
    for part in params.get("$orderby", "").split(","):
        name, _, direction = part.strip().partition(" ")
        if name:
            if name not in props:
                raise _BadRequest(f"Property '{name}' not found in type '{entity_type}'.")
            orderby.append((name, direction.strip().lower() == "desc"))
    top, skip = (
        _int(params, "$top"),
        (_int(params, "$skip") or 0) + (_int(params, "$skiptoken") or 0),
    )
    return _Query(
        entity_type,
        params.get("$filter", ""),
        orderby,
        select,
        nav_select,
        bool(expand),
        top,
        skip,
        params.get("$inlinecount") == "allpages",
    )


def _parse_select(
    text: str | None, entity_type: str, expanded: bool
) -> tuple[set[str] | None, set[str] | None]:
    if not text or text.strip() == "*":
        return None, None
    own: set[str] = set()
    nav: set[str] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        path, _, sub = part.partition("/")
        if entity_type == HEADER_TYPE and path == NAV_ITEMS:
            if not expanded:
                raise _BadRequest(
                    f"Navigation property '{NAV_ITEMS}' in $select is not "
                    "expanded; add it to $expand."
                )
            if sub and sub != "*" and sub not in TYPES[ITEM_TYPE]:
                raise _BadRequest(f"Property '{sub}' not found in type '{ITEM_TYPE}'.")
            nav.add(sub or "*")
        elif sub or path not in TYPES[entity_type]:
            raise _BadRequest(f"Property '{part}' not found in type '{entity_type}'.")
        else:
            own.add(path)
    return own, (nav or None)


def _int(params: Any, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise _BadRequest(f"Invalid system query option value '{value}' for {name}.")
    return int(value)


def _matching(state: MaterialsState, query: _Query, rows: list[dict[str, Any]]) -> list[int]:
    """Indexes of rows passing the filter, ordered; cached per (type, filter, orderby)."""
    key = (query.entity_type, query.filter, repr(query.orderby))
    cached = state.cache.get(key)
    if cached is not None:
        state.cache.move_to_end(key)
        return cached
    try:
        predicate = parse_filter(query.filter, TYPES[query.entity_type]) if query.filter else None
    except UnknownProperty as exc:
        raise _BadRequest(
            f"Property '{exc.name}' not found in type '{query.entity_type}'."
        ) from None
    except FilterError as exc:
        raise _BadRequest(f"Invalid filter expression: {exc}") from None
    indexes = [i for i, row in enumerate(rows) if predicate is None or predicate(row)]
    for name, descending in reversed(query.orderby):

        def sort_key(i: int, n: str = name) -> tuple[bool, Any]:
            return (rows[i][n] is None, rows[i][n])

        indexes.sort(key=sort_key, reverse=descending)
    state.cache[key] = indexes
    if len(state.cache) > 16:
        state.cache.popitem(last=False)
    return indexes


# --- serialisation --------------------------------------------------------------------------


def _entity(
    row: dict[str, Any], entity_type: str, select: set[str] | None, base: str
) -> dict[str, Any]:
    keys = ["MaterialDocumentYear", "MaterialDocument"]
    if entity_type == ITEM_TYPE:
        keys.append("MaterialDocumentItem")
    set_name = entity_type.removesuffix("Type")
    key_text = ",".join(f"{k}='{row[k]}'" for k in keys)
    uri = f"{base}{SERVICE}/{set_name}({key_text})"
    body: dict[str, Any] = {
        "__metadata": {"id": uri, "uri": uri, "type": f"{NAMESPACE}.{entity_type}"}
    }
    for name in TYPES[entity_type]:
        if select is None or name in select:
            body[name] = _json_value(entity_type, name, row[name])
    return body


def _header(state: MaterialsState, row: dict[str, Any], query: _Query, base: str) -> dict[str, Any]:
    body = _entity(row, HEADER_TYPE, query.select, base)
    uri = body["__metadata"]["uri"]
    if query.expand:
        nav = None if query.nav_select is None or "*" in query.nav_select else query.nav_select
        items = [_entity(_item_row(i), ITEM_TYPE, nav, base) for i in row["_items"]]
        body[NAV_ITEMS] = {"results": items}
    elif query.select is None:
        body[NAV_ITEMS] = {"__deferred": {"uri": f"{uri}/{NAV_ITEMS}"}}
    return body


async def _collection(request: Request, entity_type: str) -> Response:
    sim = get_state(request)  # the SapGate in front has counted and authenticated the call
    state = materials_state(sim)
    state.requests += 1
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        return _page(request, state, sim, entity_type)
    finally:
        state.in_flight -= 1


def _page(request: Request, state: MaterialsState, sim: SimState, entity_type: str) -> Response:
    try:
        query = _parse_query(request, entity_type)
        rows = state.header_rows if entity_type == HEADER_TYPE else state.item_rows
        indexes = _matching(state, query, rows)
    except ODataError as exc:
        return error_response(request, NAMESPACE, exc)
    cap = state.page_size or sim.config.page_cap
    wanted = len(indexes) - query.skip if query.top is None else query.top
    size = max(0, min(wanted, cap))
    page = query.skip // max(size, 1) + 1
    fault = state.fault
    if fault is not None and fault.page == page and fault.times != 0:
        state.faults_served += 1
        if fault.times is not None:
            fault.times -= 1
        message = (
            "Service unavailable"
            if fault.status >= 500
            else "Injected error on page "
            f"{page}: Property 'PostingDate' not found in type '{ITEM_TYPE}'."
        )
        return sap_error(request, fault.status, message)
    chosen = indexes[query.skip : query.skip + size]
    base = str(request.base_url).rstrip("/")
    if entity_type == HEADER_TYPE:
        results = [_header(state, rows[i], query, base) for i in chosen]
    else:
        results = [_entity(rows[i], ITEM_TYPE, query.select, base) for i in chosen]
    body: dict[str, Any] = {"results": results}
    if query.count:
        body["__count"] = str(len(indexes))
    served_to = query.skip + len(chosen)
    if len(chosen) < wanted and served_to < len(indexes):
        body["__next"] = _next_link(
            request,
            served_to - (_int(request.query_params, "$skip") or 0),
            None if query.top is None else query.top - len(chosen),
        )
    return JSONResponse({"d": body})


def _next_link(request: Request, skiptoken: int, top: int | None) -> str:
    """An absolute `__next` link with the same options, a `$skiptoken` and the `$top` left."""
    params = {
        k: v
        for k, v in request.query_params.items()
        if k not in {"$skiptoken", "$top", "$inlinecount"}
    }
    params["$skiptoken"] = str(skiptoken)
    if top is not None:
        params["$top"] = str(top)
    query = urlencode(params, safe="$,/()'").replace("+", "%20")
    return f"{next_base_url(request)}{request.url.path}?{query}"


# --- routes -----------------------------------------------------------------------------------


@router.get(f"{SERVICE}/A_MaterialDocumentHeader", include_in_schema=False)
async def headers(request: Request) -> Response:
    return await _collection(request, HEADER_TYPE)


@router.get(f"{SERVICE}/A_MaterialDocumentItem", include_in_schema=False)
async def items(request: Request) -> Response:
    return await _collection(request, ITEM_TYPE)


@router.get(f"{SERVICE}/$metadata", include_in_schema=False)
async def metadata(state: StateDep) -> Response:
    return edmx_response(MATERIAL_DOCUMENT_EDMX.read_bytes(), state.faults.metadata_missing)


@router.post("/sim/materials/generate", tags=["sim: materials"])
async def generate(request: Request, body: GenerateRequest) -> dict[str, Any]:
    """Replace the documents with seeded data; returns the HMIS item master that goes with it."""
    dataset = material_data.generate(
        seed=body.seed,
        items=body.items,
        start=body.start,
        days=body.days,
        plants=tuple(body.plants),
        code_field=body.code_field,
        extra_hmis_items=body.extra_hmis_items,
    )
    state = materials_state(get_state(request))
    state.load(dataset)
    return {
        "headers": len(dataset.headers),
        "items": dataset.item_count,
        "hmis_items": dataset.hmis_items,
        "params": dataset.params,
    }


@router.get("/sim/materials/expected", tags=["sim: materials"])
async def expected(
    request: Request, from_date: date, to_date: date, plant: str | None = Query(default=None)
) -> dict[str, Any]:
    """Ground truth of the audit of a window over the generated data."""
    dataset = materials_state(get_state(request)).dataset
    if dataset is None:
        raise HTTPException(409, "generate data first: POST /sim/materials/generate")
    truth = material_data.expected(dataset, from_date, to_date, plant)
    for name in ("unmatched", "inactive", "received"):
        truth[name] = {k: f"{v:.3f}" for k, v in truth[name].items()}
    return truth


@router.put("/sim/materials/settings", tags=["sim: materials"])
async def settings(request: Request, body: Settings) -> dict[str, Any]:
    state = materials_state(get_state(request))
    if body.latency_ms is not None:
        state.latency_ms = body.latency_ms
    if "page_size" in body.model_fields_set:
        state.page_size = body.page_size
    return {"latency_ms": state.latency_ms, "page_size": state.page_size}


@router.put("/sim/materials/faults", tags=["sim: materials"])
async def faults(request: Request, body: PageFault) -> dict[str, Any]:
    state = materials_state(get_state(request))
    state.fault = body if body.page is not None else None
    return {"fault": body.model_dump() if state.fault else None}


@router.get("/sim/materials/stats", tags=["sim: materials"])
async def stats(request: Request) -> dict[str, Any]:
    state = materials_state(get_state(request))
    return {
        "requests": state.requests,
        "faults_served": state.faults_served,
        "max_in_flight": state.max_in_flight,
        "headers": len(state.header_rows),
        "items": state.dataset.item_count if state.dataset else 0,
    }
