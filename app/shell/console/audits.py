"""`/console/audits`: the pharmacy audit runs, one run's findings (paged, and as CSV), and a form
that starts a run through the same service as `POST /inventory/sync`.

A run's page refreshes its progress part while the run is going. Pages and items read are only
written to the database when a run ends, so the live counts come from the run's progress callback
and are known on the replica that started the run from this console; elsewhere the page says so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from app.inventory import repository, service
from app.inventory.models import RUNNING, InventoryRun
from app.inventory.schemas import MaterialFinding, RunDetail, quantity_text
from app.platform.csv_cells import safe_cell
from app.platform.db import utcnow
from app.platform.errors import AppError, NotFoundError
from app.sap.material_documents import ReadStats
from app.shell.console.web import PostDep, Visit, VisitDep
from app.shell.runtime import Runtime

router = APIRouter(prefix="/console/audits", include_in_schema=False)
RUNS_PER_PAGE = 20
MATERIALS_PER_PAGE = 50
STATUSES = ("running", "succeeded", "failed")
MODES = ("forward", "backfill")
CSV_COLUMNS = ("run_id", "material", "quantity", "unit", "document_items", "documents")
#: runtime.extras key: the live progress of runs this process started from the console
PROGRESS = "console_audit_progress"
_MAX_ID = 2**31 - 1  # run ids are 32-bit integers in the database


@dataclass
class LiveProgress:
    """What the run's reader reported so far (the database has it only when the run ends)."""

    pages_read: int = 0
    pages_planned: int | None = None
    items_read: int = 0

    def update(self, stats: ReadStats, items_read: int) -> None:
        self.pages_read, self.pages_planned = stats.http_pages, stats.pages_planned
        self.items_read = items_read


@dataclass(frozen=True)
class MaterialsPage:
    """One page of a run's findings of one kind."""

    items: Sequence[MaterialFinding]
    number: int
    pages: int
    total: int
    param: str

    @property
    def first(self) -> int:
        return (self.number - 1) * MATERIALS_PER_PAGE + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.number * MATERIALS_PER_PAGE, self.total)


# --- the list and the start form -------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def audits(
    visit: VisitDep,
    status: str = "",
    before: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    return await _list_page(visit, status=status, before=before)


async def _list_page(
    visit: Visit,
    status_code: int = 200,
    *,
    status: str = "",
    before: str = "",
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    running_id: int | None = None,
) -> HTMLResponse:
    errors = dict(errors or {})
    filters = {"status": status, "before": before}
    before_id = _run_id(before)
    if status and status not in STATUSES:
        errors["status"] = f"status: {status!r} is not one of {', '.join(STATUSES)}"
    if before and before_id is None:
        errors["before"] = f"before: {before!r} is not a run number"
    runs: Sequence[InventoryRun] = []
    more = False
    if "status" not in errors and "before" not in errors:
        async with visit.runtime.sessions() as session:
            # the runs only: the list shows counts, not the findings `service.list_runs` loads
            found = await repository.list_runs(
                session, limit=RUNS_PER_PAGE + 1, before=before_id, status=status or None
            )
        runs, more = found[:RUNS_PER_PAGE], len(found) > RUNS_PER_PAGE
    return visit.render(
        "audits.html",
        status_code=422 if status_code == 200 and errors else status_code,
        title="Inventory audits",
        filters=filters,
        statuses=STATUSES,
        runs=runs,
        next_before=runs[-1].id if more and runs else None,
        form=form or {"mode": "forward", "from_date": "", "to_date": ""},
        errors=errors,
        running_id=running_id,
    )


@router.post("")
async def start(
    visit: PostDep,
    mode: Annotated[str, Form()] = "",
    from_date: Annotated[str, Form(max_length=40)] = "",
    to_date: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    form = {"mode": mode, "from_date": from_date.strip(), "to_date": to_date.strip()}
    errors = _check_form(form)
    if errors:
        return await _list_page(visit, 422, form=form, errors=errors)
    runtime = visit.runtime
    # a backfill without an end runs to today: said explicitly, the window's span is checked
    until = form["to_date"] or (utcnow().date().isoformat() if form["from_date"] else None)
    try:
        request = service.parse_request(form["from_date"] or None, until, trigger="console")
    except AppError as exc:
        # a date the service cannot read names its field; a bad window is about the end date
        field = str(exc.extra.get("field") or "to_date")
        return await _list_page(visit, exc.status_code, form=form, errors={field: exc.detail})
    config = await runtime.config.snapshot(runtime.sessions)
    if not config.enabled:
        message = (
            "SAP integration is disabled (SAP Integration - Enabled, in Settings): "
            "nothing was audited."
        )
        return await _list_page(visit, 409, form=form, errors={"start": message})
    live = LiveProgress()
    try:
        started = await service.start_run(runtime, request, config, progress=live.update)
    except AppError as exc:  # 409: one is running (its run_id); 422: nothing to audit
        running = exc.extra.get("run_id")
        return await _list_page(
            visit, exc.status_code, form=form, errors={"start": exc.detail},
            running_id=running if isinstance(running, int) else None,
        )  # fmt: skip
    run = started.run
    _keep_progress(runtime, run.id, live, started)
    return visit.redirect(
        f"/console/audits/{run.id}",
        flash=f"Audit run {run.id} started: {run.mode} {run.from_date} to {run.to_date}.",
    )


def _check_form(form: dict[str, str]) -> dict[str, str]:
    if form["mode"] not in MODES:
        return {"mode": "Choose Forward (from the watermark) or Backfill (the dates given)."}
    if form["mode"] == "forward" and (form["from_date"] or form["to_date"]):
        return {
            "mode": "A forward audit starts from the watermark and takes no dates: clear the "
            "dates, or choose Backfill."
        }
    if form["mode"] == "backfill" and not form["from_date"]:
        return {"from_date": "from_date: a backfill needs its first day (YYYY-MM-DD)"}
    return {}


def _keep_progress(
    runtime: Runtime, run_id: int, live: LiveProgress, started: service.StartedRun
) -> None:
    by_run: dict[int, LiveProgress] = runtime.extras.setdefault(PROGRESS, {})
    by_run[run_id] = live
    started.task.add_done_callback(lambda _task: by_run.pop(run_id, None))


# --- one run ---------------------------------------------------------------------------------


@router.get("/{run_id}.csv")
async def run_csv(visit: VisitDep, run_id: str) -> Response:
    """The run's unmatched materials, one row each, its documents in one cell."""
    detail = await _detail(visit, run_id)
    if not isinstance(detail, RunDetail):
        return detail
    return Response(
        to_csv(detail),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (
                f'attachment; filename="audit-run-{detail.run_id}-unmatched.csv"'
            ),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def to_csv(detail: RunDetail) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for m in detail.unmatched_materials:
        row = (detail.run_id, m.material, quantity_text(m.quantity), m.unit, m.document_items,
               " ".join(m.documents))  # fmt: skip
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


@router.get("/{run_id}/progress", response_class=HTMLResponse)
async def progress(visit: VisitDep, run_id: str) -> Response:
    """The run's live part alone: the page's script swaps it in every 3 s while it runs."""
    detail = await _detail(visit, run_id)
    if not isinstance(detail, RunDetail):
        return detail
    response = visit.render(
        "_audit_progress.html", title=f"Audit run {detail.run_id}", run=detail,
        live=_live(visit.runtime, detail), elapsed=elapsed(detail, utcnow()), fragment=True,
    )  # fmt: skip
    if detail.status != "running":  # the last swap: the page's script stops asking
        response.headers["X-Console-Refresh"] = "stop"
    return response


@router.get("/{run_id}", response_class=HTMLResponse)
async def run_page(
    visit: VisitDep,
    run_id: str,
    page: Annotated[str, Query(max_length=12)] = "1",
    inactive_page: Annotated[str, Query(max_length=12)] = "1",
) -> Response:
    detail = await _detail(visit, run_id)
    if not isinstance(detail, RunDetail):
        return detail
    errors: dict[str, str] = {}
    unmatched = _page(detail.unmatched_materials, "page", page, errors)
    inactive = _page(detail.inactive_materials, "inactive_page", inactive_page, errors)
    return visit.render(
        "audit.html",
        status_code=422 if errors else 200,
        title=f"Audit run {detail.run_id}",
        run=detail,
        live=_live(visit.runtime, detail),
        elapsed=elapsed(detail, utcnow()),
        fragment=False,
        unmatched=unmatched,
        inactive=inactive,
        pages={"page": unmatched.number, "inactive_page": inactive.number},
        errors=errors,
        per_page=MATERIALS_PER_PAGE,
    )


async def _detail(visit: Visit, run_id: str) -> RunDetail | HTMLResponse:
    number = _run_id(run_id)
    try:
        if number is None:
            raise NotFoundError(f"no inventory audit run {run_id}")
        async with visit.runtime.sessions() as session:
            return await service.get_run(session, number)
    except NotFoundError as exc:
        return visit.render("error.html", 404, title="Audit run not found", message=exc.detail)


def _run_id(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= _MAX_ID:
        return int(text)
    return None


def _page(
    findings: Sequence[MaterialFinding], param: str, text: str, errors: dict[str, str]
) -> MaterialsPage:
    pages = max(1, -(-len(findings) // MATERIALS_PER_PAGE))
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if not 1 <= number <= pages:
        errors[param] = f"{param}: {text!r} is not a page of these findings (1 to {pages})"
        number = 1
    start = (number - 1) * MATERIALS_PER_PAGE
    return MaterialsPage(
        findings[start : start + MATERIALS_PER_PAGE], number, pages, len(findings), param
    )


def _live(runtime: Runtime, detail: RunDetail) -> LiveProgress | None:
    if detail.status != RUNNING:
        return None
    progress: LiveProgress | None = runtime.extras.get(PROGRESS, {}).get(detail.run_id)
    return progress


def elapsed(detail: RunDetail, now: datetime) -> str:
    """`1 min 05 s` since the run started (to its end when it ended)."""
    seconds = int(((detail.finished_at or now) - detail.started_at).total_seconds())
    minutes, seconds = divmod(max(seconds, 0), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
