"""`/console/reconciliation`: the report finance reads (open bills by age, payments without a
bill, mismatches, totals per currency) for a date range, and the same CSV as
`GET /reconciliation` with `Accept: text/csv`.

The dates are read as the API reads them (`YYYY-MM-DD`; `to` defaults to today, `from` to no
lower bound); a bad one is shown next to its field.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from app.payments import reconciliation, repository
from app.payments.models import MISMATCH, UNMATCHED
from app.payments.schemas import PaymentLine, Reconciliation
from app.platform.db import utcnow
from app.platform.errors import AppError
from app.shell.console.web import Visit, VisitDep, query_string

router = APIRouter(prefix="/console", include_in_schema=False)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ECHO = 40
#: (company code, payment document, fiscal year, bill reference): a payment's identity
PaymentKey = tuple[str, str, str, str]


@router.get("/reconciliation", response_class=HTMLResponse)
async def reconciliation_page(
    visit: VisitDep,
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
) -> HTMLResponse:
    dates = _dates(from_, to)
    errors: dict[str, str] = {}
    result, links = await _report(visit, dates, errors)
    return _render(visit, dates, errors, result, links)


@router.get("/reconciliation.csv")
async def reconciliation_csv(
    visit: VisitDep,
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
) -> Response:
    dates = _dates(from_, to)
    errors: dict[str, str] = {}
    result, links = await _report(visit, dates, errors, with_links=False)
    if result is None:
        return _render(visit, dates, errors, None, links)
    name = f"reconciliation-{dates['from'] or 'start'}-to-{result.to_date.isoformat()}.csv"
    return Response(
        reconciliation.to_csv(result),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _render(
    visit: Visit,
    dates: dict[str, str],
    errors: dict[str, str],
    result: Reconciliation | None,
    links: dict[PaymentKey, int],
) -> HTMLResponse:
    return visit.render(
        "reconciliation.html",
        status_code=422 if errors else 200,
        title="Reconciliation",
        dates=dates,
        errors=errors,
        report=result,
        payment_href=lambda line: _href(line, links),
    )


async def _report(
    visit: Visit, dates: dict[str, str], errors: dict[str, str], *, with_links: bool = True
) -> tuple[Reconciliation | None, dict[PaymentKey, int]]:
    start = _day("from", dates["from"], errors)
    end = _day("to", dates["to"], errors)
    if errors:
        return None, {}
    try:
        async with visit.runtime.sessions() as session:
            result = await reconciliation.report(session, start, end or utcnow().date())
            links: dict[PaymentKey, int] = {}
            if with_links and (result.unmatched_payments or result.mismatches):
                # the report's lines carry no payment id: find them for the links
                for p in await repository.payments_in(session, (UNMATCHED, MISMATCH)):
                    key = (p.company_code, p.payment_document, p.payment_fiscal_year or "",
                           p.bill_reference)  # fmt: skip
                    links[key] = p.id
    except AppError as exc:
        errors[str(exc.extra.get("field", "from"))] = exc.detail
        return None, {}
    return result, links


def _dates(from_: str, to: str) -> dict[str, str]:
    # a date is 10 characters: what is cut off would not have made the value one
    return {"from": from_.strip()[:_ECHO], "to": to.strip()[:_ECHO]}


def _day(name: str, value: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = f"{name}: {value!r} is not a date (YYYY-MM-DD)"
        return None


def _key(line: PaymentLine) -> PaymentKey:
    return (line.company_code, line.payment_document, line.payment_fiscal_year, line.bill_reference)


def _href(line: PaymentLine, links: dict[PaymentKey, int]) -> str:
    """The payment's console page; its search when it was decided since the report was read."""
    if (payment_id := links.get(_key(line))) is not None:
        return f"/console/payments/{payment_id}"
    return "/console/payments" + query_string(status="all", q=line.payment_document)
