"""The SAP S/4HANA Cloud simulator as an ASGI app.

``create_sim_app()`` returns a FastAPI app (wrapped by the ``/sap/`` gate) speaking SAP's wire
formats: OAuth token endpoint, SOAP journal entry posting, OData read-back, plus ``/sim/``
controls. A new SAP service is one more ``include_router`` line in ``_SAP_ROUTERS``; it reaches
the shared state with ``sapsim.state.StateDep`` and keeps its data in ``state.extra[<name>]``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from sapsim import auth, control, cube, events, journal, materials
from sapsim.config import SimConfig
from sapsim.gate import SapGate, install_drop_log_filter
from sapsim.odata_query import CODE_NO_SERVICE, CODE_RESOURCE_NOT_FOUND, ODataError, error_response
from sapsim.state import SimState

__all__ = ["SimConfig", "create_sim_app", "sim_state"]

_ODATA_PREFIX = "/sap/opu/odata/sap/"

_SAP_ROUTERS: list[APIRouter] = [
    auth.router,
    journal.router,
    cube.router,
    materials.router,  # API_MATERIAL_DOCUMENT_SRV (goods receipts)
]


def create_sim_app(config: SimConfig | None = None) -> FastAPI:
    """Build a simulator with its own in-memory tenant; zero configuration works.

    The state is ``app.state.sim`` (a ``SimState``): ledger, faults, stats, config, extra.
    """
    app = FastAPI(
        title="SAP S/4HANA Cloud simulator",
        description="SOAP journal entry posting, OData read-back and fault injection.",
        version="1.0",
    )
    app.state.sim = SimState(config or SimConfig())
    for router in _SAP_ROUTERS:
        app.include_router(router)
    app.state.sap_route_templates = [
        (route.path_regex, route.path)
        for router in _SAP_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    app.include_router(control.router)
    app.include_router(events.router)  # pushes payments: Event Mesh, signed webhooks
    app.add_exception_handler(ODataError, _odata_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(SapGate)
    install_drop_log_filter()
    return app


def sim_state(app: FastAPI) -> SimState:
    """The ``SimState`` of an app made by ``create_sim_app``."""
    state: SimState = app.state.sim
    return state


def _service_name(path: str) -> str:
    return path[len(_ODATA_PREFIX) :].split("/", 1)[0] if path.startswith(_ODATA_PREFIX) else ""


async def _odata_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ODataError)
    return error_response(request, _service_name(request.url.path), exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Gateway-shaped 404s under ``/sap/opu/odata/sap/``; FastAPI's shape elsewhere."""
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    service_name = _service_name(path)
    if exc.status_code == 404 and service_name:
        known = any(
            template.startswith(f"{_ODATA_PREFIX}{service_name}/")
            for _, template in request.app.state.sap_route_templates
        )
        if known:
            segment = path.rstrip("/").rsplit("/", 1)[-1]
            message = f"Resource not found for the segment '{segment}'."
            error = ODataError(404, message, CODE_RESOURCE_NOT_FOUND)
        else:
            message = f"No service found for namespace '', name '{service_name}', version '0001'"
            error = ODataError(404, message, CODE_NO_SERVICE)
        return error_response(request, service_name, error)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )
