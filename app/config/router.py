"""Operator routes for the business settings (admin key)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.config.models import RevenueRule
from app.config.runtime import RuntimeDep
from app.config.service import audit_trail
from app.platform.api_keys import AdminKey
from app.platform.json_body import JsonRoute
from app.platform.logging import request_id_var
from app.platform.openapi import outcome
from app.platform.runtime import SessionDep

router = APIRouter(prefix="/config", tags=["configuration"], route_class=JsonRoute)

Account = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9]{1,10}$")]


class ValueIn(BaseModel):
    """The new value; `null` resets the key to its default."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"value": "1000"}]})
    value: str | int | bool | None


class RuleIn(BaseModel):
    """Where one department's revenue is credited."""

    model_config = ConfigDict(extra="forbid")
    department: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)
    ]
    gl_account: Account
    profit_center: Account | None = None
    cost_center: Account | None = None


class KeyValue(BaseModel):
    key: str
    value: Any


_CONFIG_EXAMPLE = {
    "SAP Integration - Enabled": "true",
    "SAP Integration - Base URL": "https://my000000-api.s4hana.cloud.sap",
    "SAP Integration - Client ID": "HMIS_BRIDGE",
    "SAP Integration - Client Secret": "********",
    "SAP Integration - Company Code": "1000",
    "revenue-rules": [
        {
            "department": "LAB",
            "gl_account": "41000000",
            "profit_center": "YB700",
            "cost_center": None,
        }
    ],
}


@router.get(
    "",
    summary="Every setting with its value; secrets shown as ********",
    responses={200: outcome("every key (abridged here) and the revenue rules", _CONFIG_EXAMPLE)},
)
async def get_config(runtime: RuntimeDep, session: SessionDep, _key: AdminKey) -> dict[str, Any]:
    values = await runtime.config.masked(session)
    rules = [
        {
            "department": d,
            "gl_account": r.gl_account,
            "profit_center": r.profit_center,
            "cost_center": r.cost_center,
        }
        for d, r in (await runtime.config.load(session)).rules.items()
    ]
    return {**values, "revenue-rules": rules}


class AuditEntry(BaseModel):
    """One change: who, when, which key, the value before and after (secrets masked)."""

    id: int
    key: str = Field(description="The setting, or `revenue-rules`")
    old_value: str | None = Field(description="null: not set before (the default applied)")
    new_value: str | None = Field(description="null: reset to the default")
    actor: str = Field(description="`admin` (the API), `cli`, or the migration that wrote it")
    request_id: str | None = Field(description="The X-Request-ID of the change, when an API call")
    changed_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page"
    )


_AUDIT_EXAMPLE = {
    "items": [
        {
            "id": 42,
            "key": "SAP Integration - Client Secret",
            "old_value": "********",
            "new_value": "********",
            "actor": "admin",
            "request_id": "5f0c6b3e2a9d4c1b8e7f6a5d4c3b2a19",
            "changed_at": "2024-03-15T10:02:11.418262Z",
        },
        {
            "id": 41,
            "key": "SAP Integration - Company Code",
            "old_value": None,
            "new_value": "1000",
            "actor": "cli",
            "request_id": None,
            "changed_at": "2024-03-15T09:58:40.100000Z",
        },
    ],
    "next_cursor": "YXVkaXQ6NDE",
}


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The settings' change trail, newest first (secrets masked; cursor paging)",
    description="Every change made through `PUT /config/{key}`, `PUT /config/revenue-rules`, "
    "`bridge config set` or a migration: who, when, the key, the value before and after. "
    "Secret values are shown as `********`, as `GET /config` shows them. `key` takes the full "
    "name or the part after `SAP Integration - `.",
    responses={
        200: outcome("one page; pass `next_cursor` as `cursor` for the next", _AUDIT_EXAMPLE),
        422: outcome(
            "bad limit or cursor",
            {"detail": "cursor: not a cursor this service issued", "field": "cursor"},
        ),
    },
)
async def get_audit(
    session: SessionDep,
    _key: AdminKey,
    key: Annotated[str | None, Query(max_length=100, description="only this key's changes")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPage:
    page = await audit_trail(session, key, cursor, limit)
    return AuditPage(
        items=[AuditEntry(**asdict(record)) for record in page.records],
        next_cursor=page.next_cursor,
    )


@router.put(
    "/revenue-rules",
    summary="Replace the department → revenue account rules",
    responses={
        200: outcome(
            "the rules now in force",
            [{"department": "LAB", "gl_account": "41000000", "profit_center": "YB700"}],
        ),
        422: outcome(
            "bad account format or duplicate department",
            {"detail": "each department may appear only once in the revenue rules"},
        ),
    },
)
async def put_revenue_rules(
    rules: Annotated[list[RuleIn], Field(max_length=1000)], runtime: RuntimeDep, _key: AdminKey
) -> list[RuleIn]:
    async with runtime.sessions() as session, session.begin():
        await runtime.config.set_revenue_rules(
            session,
            [RevenueRule(**rule.model_dump()) for rule in rules],
            actor="admin",
            request_id=request_id_var.get(),
        )
    await runtime.config.changed(runtime.sessions)
    return rules


@router.put(
    "/{key}",
    response_model=KeyValue,
    summary="Set one setting (validated, audited)",
    responses={
        200: outcome(
            "the stored value (secrets masked)",
            {"key": "SAP Integration - Company Code", "value": "1000"},
            secret={"key": "SAP Integration - Client Secret", "value": "********"},
        ),
        404: outcome(
            "unknown key",
            {"detail": "unknown configuration key 'Base URL'; GET /config lists the keys"},
        ),
        422: outcome(
            "invalid value",
            {
                "detail": "SAP Integration - Base URL must use https "
                "(BRIDGE_ALLOW_INSECURE_SAP_URLS=true is for a simulator only)",
                "key": "SAP Integration - Base URL",
            },
        ),
    },
)
async def put_config(
    key: Annotated[str, Path(max_length=100)], body: ValueIn, runtime: RuntimeDep, _key: AdminKey
) -> KeyValue:
    async with runtime.sessions() as session, session.begin():
        shown = await runtime.config.set_value(
            session, key, body.value, actor="admin", request_id=request_id_var.get()
        )
    await runtime.config.changed(runtime.sessions)
    return KeyValue(key=key, value=shown)
