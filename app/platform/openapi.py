"""The OpenAPI document as the HMIS integration guide: keys, error bodies and examples everywhere.

Routes declare their own outcomes (`responses=` with examples). This module adds what every
route shares, so no route can forget it: which key it takes (`x-bridge-key` and a line in its
description), the 401/403 of a keyed route, 413 for a body over the cap, 503 when the database
is down, and the one error body (`{"detail": "..."}`) with an example on every 4xx and 5xx,
replacing FastAPI's default 422 schema (which does not match what the bridge sends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.platform.api_keys import require_admin, require_hmis, require_reader

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every refusal: `detail` says what to do; some add fields (`errors`, "
    "`differences`, `run_id`, `key`, `status`).",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "minLength": 1},
        "errors": {
            "type": "array",
            "description": "422 only: each invalid field",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}

#: Which key each role dependency takes, for the docs and `x-bridge-key`.
_ROLES: dict[Callable[..., Any], tuple[str, str]] = {
    require_hmis: ("hmis", "`X-API-Key: BRIDGE_API_KEY` (HMIS); the admin key gets 403"),
    require_admin: (
        "admin",
        "`X-API-Key: BRIDGE_ADMIN_API_KEY` (operators); the HMIS key gets 403",
    ),
    require_reader: ("reader", "`X-API-Key`: either `BRIDGE_API_KEY` or `BRIDGE_ADMIN_API_KEY`"),
}

_DEFAULT_ERRORS: dict[str, tuple[str, str]] = {
    "400": ("bad request", "the request could not be read"),
    "401": ("missing or invalid API key", "invalid API key"),
    "403": ("the other key was used", "this route takes BRIDGE_API_KEY, not the admin key"),
    "404": ("not found", "bill B-1 has never been pushed"),
    "409": ("conflict with what the bridge holds", "bill B-1 is posted; only rejected bills ..."),
    "413": ("request body over the cap", "request body is larger than 1048576 bytes"),
    "422": (
        "invalid request; `detail` names the field, `errors` lists each one",
        "items[1].net_value: Input should be a valid decimal",
    ),
    "502": ("SAP refused the request", "SAP rejected the journal entry"),
    "503": (
        "the database is unavailable; nothing was stored, retry (`Retry-After`)",
        "the database is unavailable; nothing was stored, please retry",
    ),
}


def outcome(description: str, example: Any, model: Any = None, **more: Any) -> dict[str, Any]:
    """A `responses=` entry with its example; extra keyword examples become named examples."""
    media: dict[str, Any] = {"example": example}
    if more:
        media = {
            "examples": {"default": {"value": example}}
            | {name: {"value": value} for name, value in more.items()}
        }
    entry: dict[str, Any] = {"description": description, "content": {"application/json": media}}
    if model is not None:
        entry["model"] = model
    return entry


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _dependencies(dep)


def route_roles(app: FastAPI) -> dict[tuple[str, str], str]:
    """(path, METHOD) -> the key role the route requires (`hmis`, `admin`, `reader`)."""
    roles: dict[tuple[str, str], str] = {}
    for route in _api_routes(app):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        for dep in _dependencies(dependant):
            if dep.call in _ROLES:
                for method in route.methods or ():
                    roles[(route.path_format, method.upper())] = _ROLES[dep.call][0]
    return roles


def _api_routes(app: FastAPI) -> list[Any]:
    """Every API route with its full path (newer FastAPI keeps included routers nested)."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is not None:
        return [c for c in iter_contexts(app.routes) if isinstance(c.original_route, APIRoute)]
    return [r for r in app.routes if isinstance(r, APIRoute)]


def _error_response(description: str, example: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_REF, "example": {"detail": example}}},
    }


def _ensure_error(responses: dict[str, Any], code: str) -> None:
    description, example = _DEFAULT_ERRORS.get(code, ("refused", "see detail"))
    current = responses.get(code)
    if current is None:
        responses[code] = _error_response(description, example)
        return
    media = current.setdefault("content", {}).setdefault("application/json", {})
    if not media.get("schema") or "ValidationError" in str(media["schema"]):
        media["schema"] = _ERROR_REF
    if "example" not in media and "examples" not in media:
        media["example"] = {"detail": current.get("description") or example}


def _document(schema: dict[str, Any], roles: dict[tuple[str, str], str]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    descriptions = {role: text for role, text in _ROLES.values()}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            role = roles.get((path, method.upper()))
            if role is not None:
                operation["x-bridge-key"] = role
                note = f"**Key:** {descriptions[role]}."
                operation["description"] = (
                    operation.get("description", "") + "\n\n" + note
                ).strip()
                _ensure_error(responses, "401")
                if role != "reader":
                    _ensure_error(responses, "403")
                _ensure_error(responses, "503")
            if operation.get("parameters") or operation.get("requestBody"):
                _ensure_error(responses, "422")
            if operation.get("requestBody"):
                _ensure_error(responses, "413")
            for code in list(responses):
                if code[0] in "45":
                    _ensure_error(responses, code)
    return schema


def _restore_examples(schema: dict[str, Any], app: FastAPI) -> None:
    """Put back the response examples routes declare: FastAPI drops every null from the
    document, and an example without its `"error": null` no longer matches its schema."""
    for route in _api_routes(app):
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:  # not in the schema
                continue
            for code, declared in (route.responses or {}).items():
                documented = operation["responses"].get(str(code), {}).get("content", {})
                for media_type, media in declared.get("content", {}).items():
                    if media_type in documented:
                        examples = {k: media[k] for k in ("example", "examples") if k in media}
                        documented[media_type].update(examples)


def install(app: FastAPI, security_schemes: dict[str, Any] | None = None) -> None:
    """Replace `app.openapi` with the documented version (built once, then cached);
    `security_schemes` are those the routes' `security` entries name."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _restore_examples(schema, app)
            if security_schemes:  # beside the API key scheme FastAPI derived from the routes
                schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
                schemes.update(security_schemes)
            app.openapi_schema = _document(schema, route_roles(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
