"""`/console/preview`: the journal entry a push of a bill would post, before HMIS sends it.

The same function as `POST /bills/{bill_id}/preview` and `bridge bills preview`; nothing is
recorded or sent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from app.billing.preview import preview
from app.billing.schemas import BillIn
from app.platform.errors import AppError, describe_validation
from app.platform.json_body import UnreadableJson, parse
from app.shell.console.web import PostDep, VisitDep

router = APIRouter(prefix="/console/preview", include_in_schema=False)
#: a push body is far below this; the form refuses more before parsing it
MAX_BODY = 256 * 1024


@router.get("", response_class=HTMLResponse)
async def preview_form(visit: VisitDep) -> HTMLResponse:
    return visit.render("preview.html", title="Preview a bill", body="", bill_id="", errors={},
                        result=None)  # fmt: skip


@router.post("", response_class=HTMLResponse)
async def preview_bill(
    visit: PostDep,
    body: Annotated[str, Form()] = "",
    bill_id: Annotated[str, Form()] = "",
) -> HTMLResponse:
    errors: dict[str, str] = {}
    result = None
    bill_id = bill_id.strip() or "PREVIEW"
    if len(body) > MAX_BODY:
        errors["body"] = f"the bill is larger than {MAX_BODY // 1024} KiB"
    else:
        try:
            bill = BillIn.model_validate(parse(body.encode()))
            config = await visit.runtime.config.snapshot(visit.runtime.sessions)
            result = preview(config, bill_id, bill)
        except UnreadableJson as exc:
            errors["body"] = str(exc).removeprefix("body: ")
        except ValidationError as exc:
            errors["body"] = describe_validation(exc.errors())
        except AppError as exc:
            errors["body"] = exc.detail
    return visit.render("preview.html", status_code=422 if errors else 200,
                        title="Preview a bill", body=body, bill_id=bill_id, errors=errors,
                        result=result)  # fmt: skip
