"""`/console/bills`: find a bill, see what SAP answered, and retry, resolve or cancel it.

Every action calls the same service function as its API route, so the outcomes and the 409
reasons are the API's. A form carries the `updated_at` the page showed: if the bill changed
since, the action is refused and the page shows the bill as it is now.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.responses import Response

from app.billing import service
from app.billing.schemas import BillStatus, BillView, ResolveIn
from app.platform.errors import AppError, NotFoundError, describe_validation
from app.shell.console.web import PostDep, Visit, VisitDep

router = APIRouter(prefix="/console/bills", include_in_schema=False)
STATUSES = ("queued", "needs_review", "rejected", "posted", "reversing", "reversed", "withdrawn")
#: the actions a bill's page offers in each status (the services refuse the rest anyway)
ACTIONS = {"rejected": ("retry", "cancel"), "needs_review": ("resolve",), "posted": ("cancel",),
           "queued": ("cancel",)}  # fmt: skip


@router.get("", response_class=HTMLResponse)
async def bills(
    visit: VisitDep,
    q: str = "",
    status: str = "",
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    cursor: str = "",
) -> HTMLResponse:
    filters = {"q": q.strip(), "status": status, "from": from_, "to": to}
    errors: dict[str, str] = {}
    page = None
    try:
        query = service.bill_query(
            _status(status, errors), filters["q"] or None, _day("from", from_, errors),
            _day("to", to, errors),
        )  # fmt: skip
        if not errors:
            async with visit.runtime.sessions() as session:
                page = await service.list_bills(visit.runtime, session, query, cursor or None, 50)
    except AppError as exc:
        errors[str(exc.extra.get("field", "q"))] = exc.detail
    return visit.render(
        "bills.html",
        status_code=422 if errors else 200,
        title="Bills",
        filters=filters,
        statuses=STATUSES,
        errors=errors,
        page=page,
    )


def _status(value: str, errors: dict[str, str]) -> BillStatus | None:
    if not value:
        return None
    if value not in STATUSES:
        errors["status"] = f"status: {value!r} is not one of {', '.join(STATUSES)}"
        return None
    return value  # type: ignore[return-value]


def _day(name: str, value: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = f"{name}: {value!r} is not a date (YYYY-MM-DD)"
        return None


@router.get("/{bill_id}", response_class=HTMLResponse)
async def bill(visit: VisitDep, bill_id: str) -> HTMLResponse:
    return await _bill_page(visit, bill_id)


async def _bill_page(
    visit: Visit,
    bill_id: str,
    status_code: int = 200,
    error: str | None = None,
    action: str | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    try:
        async with visit.runtime.sessions() as session:
            view = await service.get(visit.runtime, session, bill_id)
    except NotFoundError as exc:
        return visit.render("error.html", 404, title="Bill not found", message=exc.detail)
    return visit.render(
        "bill.html",
        status_code=status_code,
        title=f"Bill {bill_id}",
        bill=view,
        actions=ACTIONS.get(view.record_status or view.status, ()),
        error=error,
        failed_action=action,
        form=form or {},
        seen=_version(view),
    )


def _version(view: BillView) -> str:
    return view.updated_at.isoformat() if view.updated_at else ""


async def _stale(visit: Visit, bill_id: str, seen: str) -> BillView | None:
    """The bill as it is now, when it changed since the page that posted was shown."""
    async with visit.runtime.sessions() as session:
        view = await service.get(visit.runtime, session, bill_id)
    return view if _version(view) != seen else None


async def _act(visit: Visit, bill_id: str, seen: str, action: str, run: Any,
               form: dict[str, str] | None = None) -> Response:  # fmt: skip
    try:
        if (now := await _stale(visit, bill_id, seen)) is not None:
            return await _bill_page(
                visit, bill_id, 409, action=action, form=form,
                error=f"This bill changed while you were looking at it (it is now "
                f"{now.record_status or now.status}). Nothing was done: check it again below.",
            )  # fmt: skip
        answer = await run()
    except NotFoundError as exc:
        return visit.render("error.html", 404, title="Bill not found", message=exc.detail)
    except AppError as exc:
        return await _bill_page(
            visit, bill_id, exc.status_code, error=exc.detail, action=action, form=form
        )
    view = answer.view
    outcome = view.status.replace("_", " ")
    document = f" (SAP document {view.sap_document_number})" if view.sap_document_number else ""
    detail = f": {view.detail}" if view.detail and not document else ""
    return visit.redirect(
        f"/console/bills/{bill_id}", flash=f"{action.capitalize()}: {outcome}{document}{detail}"
    )


@router.post("/{bill_id}/retry")
async def retry(visit: PostDep, bill_id: str, seen: Annotated[str, Form()] = "") -> Response:
    runtime = visit.runtime

    async def run() -> service.Answer:
        return await service.retry(
            runtime, await runtime.config.snapshot(runtime.sessions), bill_id
        )

    return await _act(visit, bill_id, seen, "retry", run)


@router.post("/{bill_id}/cancel")
async def cancel(
    visit: PostDep,
    bill_id: str,
    seen: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    runtime = visit.runtime
    if confirm != "yes":
        message = "Tick the box to confirm that HMIS cancelled this bill: SAP gets a reversal."
        return await _bill_page(visit, bill_id, 422, action="cancel", error=message)

    async def run() -> service.Answer:
        return await service.cancel(
            runtime, await runtime.config.snapshot(runtime.sessions), bill_id
        )

    return await _act(visit, bill_id, seen, "cancel", run)


@router.post("/{bill_id}/resolve")
async def resolve(
    visit: PostDep,
    bill_id: str,
    seen: Annotated[str, Form()] = "",
    company_code: Annotated[str, Form()] = "",
    fiscal_year: Annotated[str, Form()] = "",
    sap_document_number: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    runtime = visit.runtime
    form = {"company_code": company_code, "fiscal_year": fiscal_year,
            "sap_document_number": sap_document_number, "note": note}  # fmt: skip
    try:
        body = ResolveIn.model_validate({k: v.strip() for k, v in form.items()})
    except ValidationError as exc:
        return await _bill_page(
            visit, bill_id, 422, action="resolve", form=form,
            error=describe_validation(exc.errors()),
        )  # fmt: skip

    async def run() -> service.Answer:
        config = await runtime.config.snapshot(runtime.sessions)
        return await service.resolve(runtime, config, bill_id, body)

    return await _act(visit, bill_id, seen, "resolve", run, form)
