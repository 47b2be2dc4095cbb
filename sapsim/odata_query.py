"""OData V2 building blocks shared by the simulated read services (SAP Gateway conventions).

``load_service`` reads an EDMX ``$metadata`` file; ``parse_query`` validates ``$filter``,
``$select``, ``$orderby``, ``$top``, ``$skip``, ``$skiptoken``, ``$inlinecount``, ``$expand`` and
``$format`` against the entity type; ``run_query`` filters, sorts and pages rows of typed Python
values (``str``, ``bool``, ``Decimal``, naive UTC ``datetime``, ``time``, ``None``);
``collection_response`` / ``entity_response`` render Gateway's JSON (``{"d": {"results": [...],
"__count": "N", "__next": "..."}}``, ``/Date(ms)/``, decimals as strings) or an Atom feed when
the client did not ask for JSON; ``ODataError`` renders SAP's error envelope.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from functools import cache, cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

from defusedxml import ElementTree as SafeET
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sapsim.odata_filter import FilterError, UnknownProperty, literal_value, parse_filter

Row = dict[str, Any]
EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
SAP_NS = "{http://www.sap.com/Protocols/SAPData}"
_EPOCH = datetime(1970, 1, 1)
_SYSTEM_OPTIONS = {
    "$filter",
    "$select",
    "$orderby",
    "$top",
    "$skip",
    "$skiptoken",
    "$inlinecount",
    "$format",
    "$expand",
}
# Gateway message ids. /IWFND/CM_MGW/051 and /IWFND/MED/170 are seen in real answers; the id
# for a malformed query option is the simulator's choice.
CODE_RESOURCE_NOT_FOUND = "/IWFND/CM_MGW/051"
CODE_BAD_QUERY = "/IWFND/CM_MGW/004"
CODE_NO_SERVICE = "/IWFND/MED/170"


class ODataError(Exception):
    """An error answered with Gateway's error envelope (JSON, or XML without JSON)."""

    def __init__(self, status: int, message: str, code: str = CODE_BAD_QUERY) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


# --- metadata -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    name: str
    edm_type: str
    max_length: int | None = None
    scale: int | None = None
    display_format: str | None = None

    def default(self) -> Any:
        """The value Gateway shows for an unset field."""
        if self.edm_type == "Edm.String":
            return ""
        if self.edm_type == "Edm.Boolean":
            return False
        if self.edm_type == "Edm.Decimal":
            return Decimal(0).scaleb(-(self.scale or 0))
        return None


@dataclass(frozen=True)
class Navigation:
    name: str
    target_type: str
    many: bool


@dataclass(frozen=True)
class EntityType:
    name: str
    namespace: str
    properties: dict[str, Property]
    keys: tuple[str, ...]
    navigations: dict[str, Navigation] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"

    @cached_property
    def property_types(self) -> dict[str, str]:
        return {name: prop.edm_type for name, prop in self.properties.items()}

    @cached_property
    def defaults(self) -> Row:
        """Every property with the value Gateway shows when it is unset, in EDMX order.

        Rows may be sparse: a property missing from a row reads as its default.
        """
        return {name: prop.default() for name, prop in self.properties.items()}

    def require(self, name: str) -> Property:
        prop = self.properties.get(name)
        if prop is None:
            raise ODataError(400, f"Property '{name}' not found in type '{self.name}'")
        return prop


@dataclass(frozen=True)
class EntitySet:
    name: str
    entity_type: EntityType


@dataclass
class ODataService:
    """One Gateway service under ``/sap/opu/odata/sap/<name>``, described by its EDMX."""

    name: str
    edmx_path: Path
    entity_types: dict[str, EntityType]
    entity_sets: dict[str, EntitySet]

    @property
    def root(self) -> str:
        return f"/sap/opu/odata/sap/{self.name}"

    def entity_set(self, name: str) -> EntitySet:
        found = self.entity_sets.get(name)
        if found is None:
            raise ODataError(
                404, f"Resource not found for the segment '{name}'", CODE_RESOURCE_NOT_FOUND
            )
        return found

    def metadata_response(self, missing: Sequence[str] = ()) -> Response:
        return edmx_response(self.edmx_path.read_bytes(), missing)

    def service_document(self, request: Request) -> Response:
        """The service root: ``{"d": {"EntitySets": [...]}}`` (Atom service doc without JSON)."""
        names = list(self.entity_sets)
        if wants_json(request):
            return JSONResponse({"d": {"EntitySets": names}})
        base = f"{base_url(request)}{self.root}/"
        collections = "".join(
            f'<app:collection href="{n}"><atom:title>{n}</atom:title></app:collection>'
            for n in names
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><app:service xml:base="'
            + _xml(base)
            + '" xmlns:app="http://www.w3.org/2007/app" xmlns:atom="http://www.w3.org/2005/Atom">'
            + f"<app:workspace><atom:title>Data</atom:title>{collections}</app:workspace>"
            + "</app:service>"
        )
        return Response(body, media_type="application/atomsvc+xml")


@cache
def load_service(name: str, edmx_path: Path) -> ODataService:
    """Parse an EDMX file into entity types and sets (cached per service)."""
    root = SafeET.parse(str(edmx_path)).getroot()
    types: dict[str, EntityType] = {}
    sets: dict[str, EntitySet] = {}
    for schema in root.iter(f"{EDM}Schema"):
        namespace = schema.get("Namespace", "")
        ends = _association_ends(schema)
        for node in schema.findall(f"{EDM}EntityType"):
            entity_type = _entity_type(node, namespace, ends)
            types[entity_type.name] = entity_type
    for node in root.iter(f"{EDM}EntitySet"):
        type_name = node.get("EntityType", "").rsplit(".", 1)[-1]
        sets[node.get("Name", "")] = EntitySet(node.get("Name", ""), types[type_name])
    return ODataService(name, edmx_path, types, sets)


def _association_ends(schema: Any) -> dict[tuple[str, str], tuple[str, bool]]:
    ends = {}
    for assoc in schema.findall(f"{EDM}Association"):
        for end in assoc.findall(f"{EDM}End"):
            key = (assoc.get("Name", ""), end.get("Role", ""))
            ends[key] = (end.get("Type", "").rsplit(".", 1)[-1], end.get("Multiplicity") == "*")
    return ends


def _entity_type(
    node: Any, namespace: str, ends: dict[tuple[str, str], tuple[str, bool]]
) -> EntityType:
    properties = {}
    for prop in node.findall(f"{EDM}Property"):
        properties[prop.get("Name", "")] = Property(
            name=prop.get("Name", ""),
            edm_type=prop.get("Type", "Edm.String"),
            max_length=int(prop.get("MaxLength")) if prop.get("MaxLength") else None,
            scale=int(prop.get("Scale")) if prop.get("Scale") else None,
            display_format=prop.get(f"{SAP_NS}display-format"),
        )
    keys = tuple(ref.get("Name", "") for ref in node.findall(f"{EDM}Key/{EDM}PropertyRef"))
    navigations = {}
    for nav in node.findall(f"{EDM}NavigationProperty"):
        assoc = nav.get("Relationship", "").rsplit(".", 1)[-1]
        target, many = ends.get((assoc, nav.get("ToRole", "")), ("", False))
        navigations[nav.get("Name", "")] = Navigation(nav.get("Name", ""), target, many)
    return EntityType(node.get("Name", ""), namespace, properties, keys, navigations)


# --- query options ------------------------------------------------------------------------


@dataclass
class QueryOptions:
    predicate: Callable[[Row], bool] | None = None
    select: list[str] | None = None
    orderby: list[tuple[str, bool]] = field(default_factory=list)  # (property, descending)
    top: int | None = None
    skip: int = 0
    skiptoken: int = 0
    inlinecount: bool = False
    expand: list[str] = field(default_factory=list)


def parse_query(params: Mapping[str, str], entity_type: EntityType) -> QueryOptions:
    """Validate the system query options against ``entity_type``; raises ``ODataError``."""
    for name in params:
        if name.startswith("$") and name not in _SYSTEM_OPTIONS:
            raise ODataError(400, f"System query option '{name}' is not supported")
    options = QueryOptions(
        top=_non_negative(params, "$top"),
        skip=_non_negative(params, "$skip") or 0,
        skiptoken=_non_negative(params, "$skiptoken") or 0,
    )
    inlinecount = params.get("$inlinecount", "none")
    if inlinecount not in {"allpages", "none"}:
        raise ODataError(400, f"Invalid value '{inlinecount}' for $inlinecount")
    options.inlinecount = inlinecount == "allpages"
    if params.get("$filter"):
        options.predicate = _filter(params["$filter"], entity_type)
    if params.get("$select"):
        options.select = _select(params["$select"], entity_type)
    if params.get("$orderby"):
        options.orderby = _orderby(params["$orderby"], entity_type)
    if params.get("$expand"):
        options.expand = _expand(params["$expand"], entity_type)
    return options


def _non_negative(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ODataError(400, f"Invalid value '{raw}' for system query option {name}")
    return int(raw)


def _filter(text: str, entity_type: EntityType) -> Callable[[Row], bool]:
    try:
        return parse_filter(text, entity_type.property_types, entity_type.defaults)
    except UnknownProperty as exc:
        raise ODataError(
            400, f"Property '{exc.name}' not found in type '{entity_type.name}'"
        ) from exc
    except FilterError as exc:
        raise ODataError(400, f"Invalid filter expression: {exc}") from exc


def _select(text: str, entity_type: EntityType) -> list[str] | None:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if "*" in names:
        return None
    for name in names:
        if name not in entity_type.navigations:
            entity_type.require(name)
    return names


def _orderby(text: str, entity_type: EntityType) -> list[tuple[str, bool]]:
    result = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in {"asc", "desc"}):
            raise ODataError(400, f"Invalid $orderby expression '{part.strip()}'")
        entity_type.require(words[0])
        result.append((words[0], len(words) == 2 and words[1] == "desc"))
    return result


def _expand(text: str, entity_type: EntityType) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in entity_type.navigations:
            raise ODataError(400, f"Property '{name}' not found in type '{entity_type.name}'")
    return names


def parse_key_predicate(text: str, entity_type: EntityType) -> dict[str, Any]:
    """``CompanyCode='1000',FiscalYear='2024'`` (or a single bare value) -> typed key values."""
    parts = re.findall(r"(?:([A-Za-z_]\w*)=)?((?:[a-z]*'(?:[^']|'')*')|[^,]+)(?:,|$)", text)
    if not parts:
        raise ODataError(400, f"Invalid key predicate '{text}'")
    if len(parts) == 1 and not parts[0][0] and len(entity_type.keys) == 1:
        parts = [(entity_type.keys[0], parts[0][1])]
    values = {}
    for name, literal in parts:
        if name not in entity_type.keys:
            raise ODataError(400, f"Invalid key predicate '{text}'")
        try:
            values[name] = literal_value(literal)[0]
        except FilterError as exc:
            raise ODataError(400, f"Invalid key predicate '{text}'") from exc
    if set(values) != set(entity_type.keys):
        raise ODataError(400, f"Invalid key predicate '{text}'")
    return values


# --- evaluation ---------------------------------------------------------------------------


@dataclass
class Page:
    rows: list[Row]
    count: int
    next_skiptoken: int | None


def run_query(
    rows: Iterable[Row], entity_type: EntityType, options: QueryOptions, page_cap: int
) -> Page:
    """Filter, order (default: by key) and cut one page; ``next_skiptoken`` when more remain."""
    matched = [r for r in rows if options.predicate(r)] if options.predicate else list(rows)
    orderby = options.orderby or [(k, False) for k in entity_type.keys]
    for name, descending in reversed(orderby):
        matched.sort(key=_row_sort_key(entity_type, name), reverse=descending)
    start = options.skip + options.skiptoken
    remaining = None if options.top is None else max(options.top - options.skiptoken, 0)
    size = page_cap if remaining is None else min(remaining, page_cap)
    page = matched[start : start + size]
    more = start + size < len(matched) and (remaining is None or size < remaining)
    return Page(page, len(matched), options.skiptoken + size if more else None)


def _row_sort_key(entity_type: EntityType, name: str) -> Callable[[Row], tuple[int, int, Any]]:
    prop, default = entity_type.properties[name], entity_type.defaults[name]
    return lambda row: _sort_key(prop, row.get(name, default))


def _sort_key(prop: Property, value: Any) -> tuple[int, int, Any]:
    if value is None:
        return (0, 0, 0)
    if prop.display_format == "NonNegative" and isinstance(value, str) and value.isdigit():
        return (1, 0, int(value))  # NUMC sorts numerically though shown unpadded
    return (1, 1, value)


# --- rendering ----------------------------------------------------------------------------


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def wants_json(request: Request) -> bool:
    fmt = request.query_params.get("$format")
    if fmt is not None:
        return fmt.lower() == "json"
    return "json" in request.headers.get("accept", "").lower()


def serialize_value(prop: Property, value: Any) -> Any:
    """A typed value in Gateway's JSON form."""
    if value is None:
        return None
    if prop.edm_type in {"Edm.DateTime", "Edm.DateTimeOffset"}:
        millis = int((value - _EPOCH).total_seconds() * 1000)
        return f"/Date({millis})/" if prop.edm_type == "Edm.DateTime" else f"/Date({millis}+0000)/"
    if prop.edm_type == "Edm.Time":
        return f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _atom_value(prop: Property, value: Any) -> str:
    if prop.edm_type in {"Edm.DateTime", "Edm.DateTimeOffset"}:
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(serialize_value(prop, value))


def key_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + quote(value.replace("'", "''"), safe="") + "'"
    if isinstance(value, datetime):
        return f"datetime'{value.isoformat(timespec='seconds')}'"
    if isinstance(value, time):
        return "time'" + serialize_value(Property("t", "Edm.Time"), value) + "'"
    return str(value)


def entity_uri(request: Request, service: ODataService, entity_set: EntitySet, row: Row) -> str:
    keys = entity_set.entity_type.keys
    predicate = ",".join(f"{k}={key_literal(row.get(k))}" for k in keys)
    return f"{base_url(request)}{service.root}/{entity_set.name}({predicate})"


Expander = Callable[[str, Row], "list[Row] | Row | None"]


def serialize_entity(
    request: Request,
    service: ODataService,
    entity_set: EntitySet,
    row: Row,
    select: list[str] | None = None,
    expand: Iterable[str] = (),
    expander: Expander | None = None,
) -> dict[str, Any]:
    """One entity as Gateway JSON with ``__metadata``, deferred or expanded navigations."""
    entity_type = entity_set.entity_type
    uri = entity_uri(request, service, entity_set, row)
    data: dict[str, Any] = {
        "__metadata": {"id": uri, "uri": uri, "type": entity_type.qualified_name}
    }
    names = select if select is not None else list(entity_type.properties)
    defaults = entity_type.defaults
    for name in names:
        prop = entity_type.properties.get(name)
        if prop is not None:
            data[name] = serialize_value(prop, row.get(name, defaults[name]))
    for nav in entity_type.navigations.values():
        if select is not None and nav.name not in select and nav.name not in expand:
            continue
        if nav.name in expand and expander is not None:
            data[nav.name] = _expanded(request, service, nav, expander(nav.name, row))
        else:
            data[nav.name] = {"__deferred": {"uri": f"{uri}/{nav.name}"}}
    return data


def _expanded(request: Request, service: ODataService, nav: Navigation, value: Any) -> Any:
    target = next(s for s in service.entity_sets.values() if s.entity_type.name == nav.target_type)
    if nav.many:
        rows = value or []
        return {"results": [serialize_entity(request, service, target, r) for r in rows]}
    return None if value is None else serialize_entity(request, service, target, value)


def next_base_url(request: Request) -> str:
    """Scheme and host of ``__next`` links: the simulator's own, or the injected foreign one.

    ``PUT /sim/faults {"foreign_next_host": ...}`` makes every service name another host, to
    test that a client refuses to send its credentials wherever a page link points.
    """
    sim = getattr(request.app.state, "sim", None)
    foreign = getattr(getattr(sim, "faults", None), "foreign_next_host", None)
    return foreign or base_url(request)


def next_link(request: Request, skiptoken: int) -> str:
    """The request URL with ``$skiptoken`` replaced, as Gateway puts it in ``__next``."""
    kept = [
        part
        for part in request.url.query.split("&")
        if part and not part.lower().startswith(("$skiptoken=", "%24skiptoken="))
    ]
    query = "&".join([*kept, f"$skiptoken={skiptoken}"])
    return f"{next_base_url(request)}{request.url.path}?{query}"


def collection_response(
    request: Request,
    service: ODataService,
    entity_set: EntitySet,
    page: Page,
    options: QueryOptions,
    expander: Expander | None = None,
) -> Response:
    """Gateway's answer for an entity-set GET (JSON or Atom)."""
    if not wants_json(request):
        return _atom_feed(request, service, entity_set, page, options)
    results = [
        serialize_entity(request, service, entity_set, r, options.select, options.expand, expander)
        for r in page.rows
    ]
    body: dict[str, Any] = {"results": results}
    if options.inlinecount:
        body["__count"] = str(page.count)
    if page.next_skiptoken is not None:
        body["__next"] = next_link(request, page.next_skiptoken)
    return JSONResponse({"d": body})


def entity_response(
    request: Request,
    service: ODataService,
    entity_set: EntitySet,
    row: Row,
    options: QueryOptions,
    expander: Expander | None = None,
) -> Response:
    """Gateway's answer for a single-entity GET: ``{"d": {...}}``."""
    data = serialize_entity(
        request, service, entity_set, row, options.select, options.expand, expander
    )
    if not wants_json(request):
        page = Page([row], 1, None)
        return _atom_feed(request, service, entity_set, page, options, single=True)
    return JSONResponse({"d": data})


def _atom_feed(
    request: Request,
    service: ODataService,
    entity_set: EntitySet,
    page: Page,
    options: QueryOptions,
    single: bool = False,
) -> Response:
    entity_type = entity_set.entity_type
    names = options.select or list(entity_type.properties)
    updated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = []
    for row in page.rows:
        props = []
        for name in names:
            prop = entity_type.properties.get(name)
            if prop is None:
                continue
            value = row.get(name, entity_type.defaults[name])
            if value is None:
                props.append(f'<d:{name} m:null="true"/>')
            else:
                props.append(f"<d:{name}>{_xml(_atom_value(prop, value))}</d:{name}>")
        uri = _xml(entity_uri(request, service, entity_set, row))
        entries.append(
            f'<entry><id>{uri}</id><title type="text">{entity_set.name}</title>'
            f"<updated>{updated}</updated>"
            f'<category term="{entity_type.qualified_name}" '
            'scheme="http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"/>'
            f'<link href="{uri}" rel="self"/>'
            f'<content type="application/xml"><m:properties>{"".join(props)}</m:properties>'
            "</content></entry>"
        )
    namespaces = (
        'xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
        'xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices"'
    )
    head = '<?xml version="1.0" encoding="utf-8"?>'
    if single:
        body = head + entries[0].replace("<entry>", f"<entry {namespaces}>", 1)
        return Response(body, media_type="application/atom+xml;type=entry")
    count = f"<m:count>{page.count}</m:count>" if options.inlinecount else ""
    nxt = ""
    if page.next_skiptoken is not None:
        nxt = f'<link href="{_xml(next_link(request, page.next_skiptoken))}" rel="next"/>'
    body = (
        f"{head}<feed {namespaces}><id>{_xml(str(request.url))}</id>"
        f'<title type="text">{entity_set.name}</title><updated>{updated}</updated>'
        f"{count}{''.join(entries)}{nxt}</feed>"
    )
    return Response(body, media_type="application/atom+xml;type=feed")


def _xml(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


# --- errors -------------------------------------------------------------------------------


def error_response(request: Request, service_name: str, error: ODataError) -> Response:
    """SAP Gateway's error envelope: JSON when asked for, else XML."""
    transaction = uuid.uuid4().hex.upper()
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f") + "0"
    resolution = {
        "SAP_Transaction": (
            'For backend administrators: use ADT feed reader "SAP Gateway Error Log" or run '
            "transaction /IWFND/ERROR_LOG on SAP Gateway hub system and search for entries "
            "with the timestamp above for more details"
        ),
        "SAP_Note": (
            "See SAP Note 1797736 for error analysis "
            "(https://service.sap.com/sap/support/notes/1797736)"
        ),
    }
    application = {
        "component_id": "",
        "service_namespace": "/SAP/",
        "service_id": service_name,
        "service_version": "0001",
    }
    if wants_json(request):
        detail = {
            "code": error.code,
            "message": error.message,
            "longtext_url": "",
            "propertyref": "",
            "severity": "error",
            "target": "",
        }
        body = {
            "error": {
                "code": error.code,
                "message": {"lang": "en", "value": error.message},
                "innererror": {
                    "application": application,
                    "transactionid": transaction,
                    "timestamp": stamp,
                    "Error_Resolution": resolution,
                    "errordetails": [detail],
                },
            }
        }
        return JSONResponse(body, status_code=error.status)
    app_xml = "".join(f"<{k}>{_xml(v)}</{k}>" if v else f"<{k}/>" for k, v in application.items())
    res_xml = "".join(f"<{k}>{_xml(v)}</{k}>" for k, v in resolution.items())
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><error '
        'xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
        f'<code>{_xml(error.code)}</code><message xml:lang="en">{_xml(error.message)}</message>'
        f"<innererror><application>{app_xml}</application>"
        f"<transactionid>{transaction}</transactionid><timestamp>{stamp}</timestamp>"
        f"<Error_Resolution>{res_xml}</Error_Resolution><errordetails/></innererror></error>"
    )
    return Response(xml, status_code=error.status, media_type="application/xml")


def edmx_response(edmx: bytes, missing: Sequence[str] = ()) -> Response:
    """An EDMX document, without the ``<Property>`` elements named in ``missing``."""
    for name in missing:
        edmx = re.sub(rb'<Property\s+Name="' + re.escape(name.encode()) + rb'"[^>]*/>', b"", edmx)
    return Response(edmx, media_type="application/xml")
