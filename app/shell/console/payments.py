"""`/console/payments`: payments by status, one payment with its audit trail, and the
operators' decisions on it (match to a bill, accept a mismatch, dismiss).

Every decision calls the same function as its API route (`app.payments.decisions`), as actor
`console`. A form carries the status the page showed as `expected_status`: if the payment has
another one now, the service refuses with its 409 "changed meanwhile" and the page shows the
payment as it is now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.payments import decisions
from app.payments.models import ACCEPT, DISMISS, MATCH, STATUSES, UNMATCHED
from app.payments.schemas import DecisionIn, MatchIn, PaymentDetail
from app.platform.errors import AppError, NotFoundError, describe_validation
from app.shell.console.web import PostDep, Visit, VisitDep

router = APIRouter(prefix="/console/payments", include_in_schema=False)
ACTOR = "console"
PER_PAGE = 50
#: the tabs of the list; `all` is any status. The service filters on one status at a time, so
#: the two that need attention (unmatched, mismatch) are two tabs, unmatched first.
TABS = (*STATUSES, "all")
DEFAULT_TAB = UNMATCHED
#: as `GET /payments` takes them
MAX_SEARCH = 64
MAX_CURSOR = 200
_MAX_ID = 2**63 - 1

Decide = Callable[[AsyncSession], Awaitable[PaymentDetail]]


# --- the list --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def payments(
    visit: VisitDep, status: str = "", q: str = "", cursor: str = ""
) -> HTMLResponse:
    tab = status or DEFAULT_TAB
    filters = {"status": status, "q": q.strip()}
    errors: dict[str, str] = {}
    if tab not in TABS:
        errors["status"] = f"status: {status!r} is not one of {', '.join(TABS)}"
    if len(filters["q"]) > MAX_SEARCH:
        errors["q"] = f"Search payments: at most {MAX_SEARCH} characters (got {len(filters['q'])})"
    elif any(ord(c) < 32 or ord(c) == 127 for c in filters["q"]):
        errors["q"] = "Search payments: must not contain control characters"
    if len(cursor) > MAX_CURSOR:
        errors["cursor"] = "cursor: not a cursor this service issued"
    found = None
    if not errors:
        try:
            async with visit.runtime.sessions() as session:
                found = await decisions.page(
                    session, None if tab == "all" else tab, filters["q"] or None,
                    cursor or None, PER_PAGE,
                )  # fmt: skip
        except AppError as exc:
            errors[str(exc.extra.get("field", "q"))] = exc.detail
    return visit.render(
        "payments.html",
        status_code=422 if errors else 200,
        title="Payments",
        tab=tab,
        tabs=TABS,
        filters=filters,
        cursor=cursor,
        errors=errors,
        page=found,
    )


# --- one payment -----------------------------------------------------------------------------


@router.get("/{payment_id}", response_class=HTMLResponse)
async def payment(visit: VisitDep, payment_id: str) -> HTMLResponse:
    return await _payment_page(visit, payment_id)


def _id(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= _MAX_ID:
        return int(text)
    return None


def _not_found(visit: Visit, payment_id: str) -> HTMLResponse:
    return visit.render(
        "error.html", 404, title="Payment not found", message=f"no payment {payment_id}"
    )


async def _payment_page(
    visit: Visit,
    payment_id: str,
    status_code: int = 200,
    *,
    action: str | None = None,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    number = _id(payment_id)
    if number is None:
        return _not_found(visit, payment_id)
    try:
        async with visit.runtime.sessions() as session:
            detail = await decisions.get(session, number)
    except NotFoundError:
        return _not_found(visit, payment_id)
    return visit.render(
        "payment.html",
        status_code=status_code,
        title=f"Payment {detail.payment_document}",
        payment=detail,
        actions=detail.allowed_actions,
        failed_action=action,
        error=error,
        errors=errors or {},
        form=form or {},
    )


async def _decide(
    visit: Visit,
    payment_id: str,
    action: str,
    form: dict[str, str],
    run: Decide,
) -> Response:
    number = _id(payment_id)
    if number is None:
        return _not_found(visit, payment_id)
    try:
        async with visit.runtime.sessions() as session, session.begin():
            detail = await run(session)
    except NotFoundError as exc:
        # the payment (then its page says so) or, for a match, the bill named
        errors = {f"{action}_bill": exc.detail} if action == MATCH else {}
        return await _payment_page(
            visit, payment_id, 404, action=action, error=exc.detail, errors=errors, form=form
        )
    except AppError as exc:
        field = exc.extra.get("field")
        if field is None and exc.detail.startswith("bill_id:"):
            field = "bill"
        errors = {f"{action}_{field}": exc.detail} if field else {}
        return await _payment_page(
            visit, payment_id, exc.status_code, action=action, error=exc.detail, errors=errors,
            form=form,
        )  # fmt: skip
    return visit.redirect(f"/console/payments/{number}", flash=_outcome(action, detail))


def _outcome(action: str, detail: PaymentDetail) -> str:
    """`Match: confirmed against bill B-1`, with the reasons of a mismatch."""
    said = f"{action.capitalize()}: {detail.status}"
    if action != DISMISS and detail.bill_id:
        said += f" {'against' if action == MATCH else 'on'} bill {detail.bill_id}"
    if detail.status == "mismatch" and detail.reasons:
        said += f" ({'; '.join(detail.reasons)})"
    return said


def _invalid(exc: ValidationError, action: str) -> dict[str, str]:
    """The request schema's complaints, each next to its field (`match_note`, `match_bill`)."""
    errors: dict[str, str] = {}
    for problem in exc.errors():
        field = str(problem["loc"][0]) if problem.get("loc") else "note"
        key = f"{action}_{'bill' if field == 'bill_id' else field}"
        errors.setdefault(key, describe_validation([problem]))
    return errors


async def _refused(
    visit: Visit, payment_id: str, action: str, errors: dict[str, str], form: dict[str, str]
) -> Response:
    return await _payment_page(
        visit, payment_id, 422, action=action, error="; ".join(errors.values()), errors=errors,
        form=form,
    )  # fmt: skip


@router.post("/{payment_id}/match")
async def match(
    visit: PostDep,
    payment_id: str,
    bill: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    expected_status: Annotated[str, Form()] = "",
) -> Response:
    form = {"match_bill": bill, "match_note": note}
    errors: dict[str, str] = {}
    if not bill.strip():
        errors["match_bill"] = "bill: name the bill (its id or HMIS reference)"
    try:
        body = MatchIn.model_validate({"bill_id": bill or " ", "note": note})
    except ValidationError as exc:
        errors = {**_invalid(exc, MATCH), **errors}
    if errors:
        return await _refused(visit, payment_id, MATCH, errors, form)
    number = _id(payment_id) or 0

    async def run(session: AsyncSession) -> PaymentDetail:
        return await decisions.match(
            session, number, body.bill_id, body.note, ACTOR, expected_status or None
        )

    return await _decide(visit, payment_id, MATCH, form, run)


@router.post("/{payment_id}/accept")
async def accept(
    visit: PostDep,
    payment_id: str,
    note: Annotated[str, Form()] = "",
    expected_status: Annotated[str, Form()] = "",
) -> Response:
    return await _note_only(visit, payment_id, ACCEPT, note, expected_status)


@router.post("/{payment_id}/dismiss")
async def dismiss(
    visit: PostDep,
    payment_id: str,
    note: Annotated[str, Form()] = "",
    expected_status: Annotated[str, Form()] = "",
) -> Response:
    return await _note_only(visit, payment_id, DISMISS, note, expected_status)


async def _note_only(
    visit: Visit, payment_id: str, action: str, note: str, expected_status: str
) -> Response:
    form = {f"{action}_note": note}
    try:
        body = DecisionIn.model_validate({"note": note})
    except ValidationError as exc:
        return await _refused(visit, payment_id, action, _invalid(exc, action), form)
    number = _id(payment_id) or 0
    decide = decisions.accept if action == ACCEPT else decisions.dismiss

    async def run(session: AsyncSession) -> PaymentDetail:
        return await decide(session, number, body.note, ACTOR, expected_status or None)

    return await _decide(visit, payment_id, action, form, run)
