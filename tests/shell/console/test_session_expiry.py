"""A console session ends when `BRIDGE_CONSOLE_SESSION_HOURS` has passed (here: one second)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.shell.console import ConsoleSite, Page, expect


@pytest.fixture
def console_overrides() -> dict[str, Any]:
    return {"BRIDGE_CONSOLE_SESSION_HOURS": 1 / 3600}


def test_an_expired_session_is_sent_to_sign_in_and_back(
    page: Page, console_site: ConsoleSite
) -> None:
    page.goto(console_site.url("/console/bills?status=posted"))
    page.get_by_label("Admin key").fill(console_site.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Bills", level=1)).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "bridge_console")
    assert 0 < cookie["expires"] - time.time() <= 2  # the browser forgets it too

    time.sleep(2.5)  # past the session's second (itsdangerous counts whole seconds)
    page.goto(console_site.url("/console/bills?status=posted"))
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.get_by_label("Admin key").fill(console_site.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/bills\?status=posted$"))  # where it was


def test_a_session_signed_under_another_admin_key_is_refused(console_site: ConsoleSite) -> None:
    import httpx

    from app.shell.console import auth
    from tests.support.bridge import make_settings

    other = make_settings(
        "sqlite+aiosqlite:///unused.db", BRIDGE_ADMIN_API_KEY="another-admin-key-0123"
    )
    token = auth._serializer(other, "session").dumps({"csrf": "x"})
    answer = httpx.get(console_site.url("/console"), cookies={"bridge_console": token})
    assert answer.status_code == 303
    assert "reason=invalid" in answer.headers["location"]
