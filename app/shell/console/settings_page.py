"""`/console/settings`: every business setting (secrets never shown), the revenue rules, and
the trail of changes.

A change goes through the same `ConfigService` calls as `PUT /config/{key}` and
`PUT /config/revenue-rules`, so the validation and its messages are the API's; the actor is
`console`. A secret's value is never sent to the browser, not even in a form field: its input is
empty, and an empty input changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.datastructures import FormData
from starlette.responses import Response

from app.config.keys import MASK, PREFIX, SPECS
from app.config.models import RevenueRule
from app.config.router import RuleIn
from app.config.service import RULES_KEY, AuditPage, Rule, audit_trail
from app.platform.errors import AppError, describe_validation
from app.platform.locks import lock_key
from app.platform.logging import request_id_var
from app.shell.console.web import PostDep, Visit, VisitDep

router = APIRouter(prefix="/console/settings", include_in_schema=False)
ACTOR = "console"
RULES_LOCK = "console-revenue-rules"
AUDIT_PER_PAGE = 50
MAX_RULES = 1000  # as PUT /config/revenue-rules takes at most
RULE_FIELDS = ("department", "gl_account", "profit_center", "cost_center")
UNCHANGED = "unchanged; type to replace"


@dataclass(frozen=True)
class Setting:
    """One row of the settings table; `shown` is masked for a secret that is set."""

    name: str
    short: str
    slug: str
    shown: str | None
    default: str | None
    secret: bool
    multiline: bool


@dataclass
class RuleRow:
    """One row of the revenue rules form, as typed (strings, blank for none)."""

    department: str = ""
    gl_account: str = ""
    profit_center: str = ""
    cost_center: str = ""
    remove: bool = False

    @property
    def blank(self) -> bool:
        return not any(getattr(self, f).strip() for f in RULE_FIELDS)


def slug(name: str) -> str:
    short = name.removeprefix(PREFIX)
    return "setting-" + "".join(c if c.isalnum() else "-" for c in short.lower())


# --- the page --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def settings(
    visit: VisitDep,
    audit_key: Annotated[str, Query(max_length=100)] = "",
    audit_cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    return await _page(visit, audit_key=audit_key, audit_cursor=audit_cursor)


async def _page(
    visit: Visit,
    status_code: int = 200,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    rows: list[RuleRow] | None = None,
    rule_errors: dict[str, str] | None = None,
    audit_key: str = "",
    audit_cursor: str = "",
) -> HTMLResponse:
    runtime = visit.runtime
    audit_errors: dict[str, str] = {}
    trail: AuditPage | None = None
    async with runtime.sessions() as session:
        masked = await runtime.config.masked(session)
        rules = (await runtime.config.load(session)).rules
        try:
            trail = await audit_trail(
                session, audit_key or None, audit_cursor or None, AUDIT_PER_PAGE
            )
        except AppError as exc:
            audit_errors[str(exc.extra.get("field", "cursor"))] = exc.detail
    shown_rows = rows if rows is not None else [*_rows(rules), RuleRow()]
    return visit.render(
        "settings.html",
        status_code=422 if status_code == 200 and audit_errors else status_code,
        title="Settings",
        settings=_settings(masked),
        errors=errors or {},
        typed=typed or {},
        unchanged=UNCHANGED,
        rows=shown_rows,
        rule_errors=rule_errors or {},
        seen=fingerprint(rules),
        trail=trail,
        audit_filters={"audit_key": audit_key},
        audit_cursor=audit_cursor,
        audit_errors=audit_errors,
        audit_keys=[*SPECS, RULES_KEY],
        per_page=AUDIT_PER_PAGE,
    )


def _settings(masked: dict[str, Any]) -> list[Setting]:
    return [
        Setting(
            name=name,
            short=name.removeprefix(PREFIX),
            slug=slug(name),
            # a secret is `********` or None here: never its value
            shown=MASK if spec.secret and masked.get(name) else masked.get(name),
            default=spec.default,
            secret=spec.secret,
            multiline="Certificate" in name,
        )
        for name, spec in SPECS.items()
    ]


def _rows(rules: dict[str, Rule]) -> list[RuleRow]:
    return [
        RuleRow(department, r.gl_account, r.profit_center or "", r.cost_center or "")
        for department, r in sorted(rules.items())
    ]


def fingerprint(rules: dict[str, Rule]) -> str:
    """What the rules were when the page was shown, to notice a change made meanwhile."""
    text = "\n".join(
        f"{d}\t{r.gl_account}\t{r.profit_center or ''}\t{r.cost_center or ''}"
        for d, r in sorted(rules.items())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- one setting -----------------------------------------------------------------------------


@router.post("/value")
async def set_value(
    visit: PostDep,
    key: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "save",
) -> Response:
    spec = SPECS.get(key)
    # what was typed goes back into the field on an error, unless it is a secret
    typed = {key: value} if spec is not None and not spec.secret else {}
    problem = None
    if action not in ("save", "reset"):
        problem = "Use Save or Reset."
    elif action == "save" and spec is not None and spec.secret and value == "":
        problem = (
            f"{key}: type the new value to replace the stored one (it is never shown), "
            "or use Reset to clear it"
        )
    elif "\x00" in value:
        problem = f"{key}: must not contain NUL characters"
    if problem:
        return await _page(visit, 422, errors={key: problem}, typed=typed)
    runtime = visit.runtime
    try:
        async with runtime.sessions() as session, session.begin():
            shown = await runtime.config.set_value(
                session, key, None if action == "reset" else value,
                actor=ACTOR, request_id=request_id_var.get(),
            )  # fmt: skip
    except AppError as exc:
        if spec is None:  # unknown key: not a field of this page
            return await _page(visit, exc.status_code, errors={"_page": exc.detail})
        return await _page(visit, exc.status_code, errors={key: exc.detail}, typed=typed)
    await runtime.config.changed(runtime.sessions)
    if action == "reset":
        after = f"it is now its default, {shown}" if shown is not None else "it is now empty"
        flash = f"Reset {key}: {after}."
    else:
        flash = f"Saved {key}: {shown}." if not SPECS[key].secret else f"Saved {key} (secret)."
    return visit.redirect(f"/console/settings#{slug(key)}", flash=flash)


# --- the revenue rules -----------------------------------------------------------------------


@router.post("/revenue-rules")
async def revenue_rules(
    visit: PostDep,
    seen: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "save",
) -> Response:
    form = await visit.request.form()
    rows, errors = _posted_rows(form)
    if action == "add":
        return await _page(visit, rows=[*rows, RuleRow()], rule_errors=errors)
    kept = [(index, row) for index, row in enumerate(rows) if not row.remove and not row.blank]
    rules: list[RevenueRule] = []
    for index, row in kept:
        if any(f"{f}_{index}" in errors for f in RULE_FIELDS):
            continue
        try:
            rule = RuleIn.model_validate({
                "department": row.department, "gl_account": row.gl_account,
                "profit_center": row.profit_center.strip() or None,
                "cost_center": row.cost_center.strip() or None,
            })  # fmt: skip
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error.get("loc") else "department"
                errors.setdefault(f"{field}_{index}", describe_validation([error]))
            continue
        rules.append(RevenueRule(**rule.model_dump()))
    if len(rules) > MAX_RULES:
        errors["_rules"] = f"at most {MAX_RULES} revenue rules; {len(rules)} were sent"
    if errors:
        return await _page(visit, 422, rows=rows, rule_errors=errors)
    runtime = visit.runtime
    stale = None
    try:
        async with runtime.sessions() as session, session.begin():
            if runtime.engine.dialect.name == "postgresql":  # two saves compare one at a time
                await session.execute(select(func.pg_advisory_xact_lock(lock_key(RULES_LOCK))))
            now = (await runtime.config.load(session)).rules
            if fingerprint(now) == seen:
                await runtime.config.set_revenue_rules(
                    session, rules, actor=ACTOR, request_id=request_id_var.get()
                )
            else:
                stale = ", ".join(f"{d}={r.gl_account}" for d, r in sorted(now.items()))
    except AppError as exc:
        return await _page(
            visit, exc.status_code, rows=rows, rule_errors={"_rules": exc.detail, **_dupes(rows)}
        )
    except (IntegrityError, OperationalError):  # another save won the race (SQLite: busy)
        stale = "(another save just now: reload to see it)"
    if stale is not None:
        message = (
            "The revenue rules changed while you were looking at them: nothing was saved. In "
            f"force now: {stale or 'none'}. Your table is below; save it again to replace them."
        )
        return await _page(visit, 409, rows=rows, rule_errors={"_rules": message})
    await runtime.config.changed(runtime.sessions)
    return visit.redirect(
        "/console/settings#rules-heading",
        flash=f"Saved the revenue rules: {len(rules)} department(s).",
    )


def _posted_rows(form: FormData) -> tuple[list[RuleRow], dict[str, str]]:
    text = str(form.get("rows", "0"))
    count = int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else 0
    rows: list[RuleRow] = []
    errors: dict[str, str] = {}
    for index in range(min(count, MAX_RULES + 1)):
        values = {f: str(form.get(f"{f}_{index}", "")) for f in RULE_FIELDS}
        for name, value in values.items():
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                errors[f"{name}_{index}"] = f"{name}: must not contain control characters"
        rows.append(RuleRow(**values, remove=form.get(f"remove_{index}") == "yes"))
    return rows, errors


def _dupes(rows: Sequence[RuleRow]) -> dict[str, str]:
    """Mark the second and later rows of a department that appears more than once."""
    seen: set[str] = set()
    marks = {}
    for index, row in enumerate(rows):
        name = row.department.strip()
        if row.remove or not name:
            continue
        if name in seen:
            marks[f"department_{index}"] = f"department: {name!r} appears in an earlier row"
        seen.add(name)
    return marks
