"""Operator routes for the business settings (admin key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.config.models import RevenueRule
from app.deps import AdminKey, RuntimeDep, SessionDep
from app.json_body import JsonRoute
from app.logging import request_id_var
from app.openapi import outcome

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
