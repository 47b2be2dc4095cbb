"""The console's Settings: every business setting (secrets never shown), the revenue rules, and
the trail of changes; the validation is the API's, message for message."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import create_async_engine

from app.config.crypto import SecretBox
from app.config.keys import PREFIX, SPECS
from app.config.service import ConfigService
from app.platform.db import make_session_factory
from app.shell.console.web import FLASH_COOKIE
from tests.shell.console import ConsoleSite, Page, Screenshot, assert_accessible, csrf_token, expect
from tests.shell.console.conftest import off_thread
from tests.support.bridge import ENCRYPTION_KEY

CODE = PREFIX + "Company Code"
SECRET = PREFIX + "Client Secret"
NEW_SECRET = "console-typed-secret-7f3a9c1e"


async def stored(site: ConsoleSite, key: str) -> str | None:
    """The value the bridge holds for `key`, decrypted: what was really saved."""
    engine = create_async_engine(site.bridge.settings.database_url)
    service = ConfigService(SecretBox(ENCRYPTION_KEY), allow_insecure_urls=True)
    try:
        async with make_session_factory(engine)() as session:
            return (await service.load(session)).values[key]
    finally:
        await engine.dispose()


def trail(site: ConsoleSite, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = site.admin.get("/config/audit", params=params).json()["items"]
    return items


def csrf(client: httpx.Client) -> str:
    return csrf_token(client, "/console/settings")


def field_error(html: str, field_id: str) -> str | None:
    found = re.search(rf'<p id="{re.escape(field_id)}_error" class="error"[^>]*>(.*?)</p>', html)
    return unescape(re.sub(r"<[^>]+>", "", found[1])).strip() if found else None


def slug(key: str) -> str:
    short = key.removeprefix(PREFIX)
    return "setting-" + "".join(c if c.isalnum() else "-" for c in short.lower())


def set_value(client: httpx.Client, key: str, value: str, action: str = "save") -> httpx.Response:
    return client.post(
        "/console/settings/value",
        data={"csrf_token": csrf(client), "key": key, "value": value, "action": action},
    )


def rules_form(client: httpx.Client, rows: list[dict[str, str]], **extra: str) -> dict[str, str]:
    page = client.get("/console/settings").text
    seen = re.search(r'name="seen" value="([^"]*)"', page)
    assert seen is not None
    data = {"csrf_token": csrf(client), "seen": seen[1], "rows": str(len(rows)), **extra}
    for index, row in enumerate(rows):
        data |= {f"{name}_{index}": value for name, value in row.items()}
    return data


# --- in the browser ---------------------------------------------------------------------------


def test_settings_are_edited_with_the_apis_validation_and_land_in_the_trail(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    page.goto(console_site.url("/console/sign-in"))
    page.get_by_label("Admin key").fill(console_site.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    table = page.locator("table.settings tbody tr")
    expect(table).to_have_count(len(SPECS))
    expect(page.locator(f"#{slug(SECRET)}")).to_contain_text("********")
    assert "sim-secret" not in page.content()  # the seeded secret
    assert_accessible(page)
    screenshot(page, "settings")

    # an invalid value: the API's message, next to the field, which keeps what was typed
    code = page.get_by_label(CODE, exact=True)
    expect(code).to_have_value("1000")
    code.fill("TOO-LONG")
    page.get_by_role("button", name="Save Company Code", exact=True).click()
    message = f"{CODE} must be at most 4 characters"
    expect(page.locator(f"#{slug(CODE)}_error")).to_have_text(message)
    expect(code).to_have_value("TOO-LONG")
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(code).to_have_attribute("aria-describedby", f"{slug(CODE)}_error")
    api = console_site.admin.put(f"/config/{CODE}", json={"value": "TOO-LONG"})
    assert (api.status_code, api.json()["detail"]) == (422, message)
    assert_accessible(page)
    screenshot(page, "settings-invalid")

    code.fill("2000")
    page.get_by_role("button", name="Save Company Code", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Saved {CODE}: 2000.")
    expect(code).to_have_value("2000")
    newest = page.locator("#trail tbody tr").first
    expect(newest).to_contain_text("console")
    expect(newest).to_contain_text(CODE)
    expect(newest.locator("td.change")).to_have_text("1000 → 2000")
    entry = trail(console_site, limit=1)[0]
    assert (entry["key"], entry["actor"], entry["old_value"], entry["new_value"]) == (
        CODE,
        "console",
        "1000",
        "2000",
    )

    # a secret: typed once, saved, never sent back (not even in the field)
    secret = page.get_by_label(SECRET, exact=True)
    expect(secret).to_have_value("")
    expect(secret).to_have_attribute("placeholder", "unchanged; type to replace")
    secret.fill(NEW_SECRET)
    page.get_by_role("button", name="Save Client Secret", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Saved {SECRET} (secret).")
    assert off_thread(stored(console_site, SECRET)) == NEW_SECRET
    expect(page.get_by_label(SECRET, exact=True)).to_have_value("")
    expect(page.locator("#trail tbody tr").first.locator("td.change")).to_have_text(
        "******** → ********"
    )
    assert NEW_SECRET not in page.content()
    assert all(NEW_SECRET not in c["value"] for c in page.context.cookies())
    assert_accessible(page)

    # the revenue rules: a bad account is refused next to its field, nothing saved
    rules = page.locator("table.rules tbody tr")
    expect(rules).to_have_count(4)  # LAB, OPD, PHARM and a blank row to add one
    page.get_by_label("G/L account, row 1").fill("41 000")
    page.get_by_role("button", name="Save revenue rules").click()
    expect(page.locator("#gl_account_0_error")).to_have_text(
        "gl_account: String should match pattern '^[A-Z0-9]{1,10}$'"
    )
    expect(page.get_by_label("G/L account, row 1")).to_have_value("41 000")
    assert_accessible(page)
    screenshot(page, "settings-rules-invalid")

    page.get_by_role("button", name="Add a row").click()
    expect(rules).to_have_count(5)
    page.get_by_label("G/L account, row 1").fill("41000999")
    page.get_by_label("Remove row 2 (OPD)").check()
    page.get_by_label("Department, row 4").fill("RAD")
    page.get_by_label("G/L account, row 4").fill("41000400")
    page.get_by_label("Profit centre, row 4").fill("PC400")
    page.get_by_label("Department, row 5").fill("ER")
    page.get_by_label("G/L account, row 5").fill("41000500")
    page.get_by_label("Cost centre, row 5").fill("CC500")
    page.get_by_role("button", name="Save revenue rules").click()
    expect(page.get_by_role("status")).to_have_text("Saved the revenue rules: 4 department(s).")
    assert console_site.admin.get("/config").json()["revenue-rules"] == [
        {"department": "ER", "gl_account": "41000500", "profit_center": None,
         "cost_center": "CC500"},
        {"department": "LAB", "gl_account": "41000999", "profit_center": "PC100",
         "cost_center": None},
        {"department": "PHARM", "gl_account": "41000300", "profit_center": "PC300",
         "cost_center": None},
        {"department": "RAD", "gl_account": "41000400", "profit_center": "PC400",
         "cost_center": None},
    ]  # fmt: skip
    expect(rules).to_have_count(5)
    expect(page.get_by_label("Department, row 1")).to_have_value("ER")
    expect(page.locator("#trail tbody tr").first.locator("td.change")).to_have_text(
        "LAB=41000100, OPD=41000200, PHARM=41000300 → "
        "LAB=41000999, PHARM=41000300, RAD=41000400, ER=41000500"
    )

    # Reset asks first, then empties a key that has no default
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset Company Code", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Reset {CODE}: it is now empty.")
    expect(page.locator(f"#{slug(CODE)}")).to_contain_text("not set")
    expect(page.get_by_label(CODE, exact=True)).to_have_value("")
    assert console_site.admin.get("/config").json()[CODE] is None
    newest = page.locator("#trail tbody tr").first
    expect(newest.locator("td.change")).to_have_text("2000 → reset (default)")
    assert NEW_SECRET not in page.content()
    assert_accessible(page)
    screenshot(page, "settings-saved")
    assert offsite_requests == []


# --- over plain HTTP --------------------------------------------------------------------------

BAD_VALUES = [
    (PREFIX + "Base URL", "ftp://sap.example"),
    (PREFIX + "Enabled", "maybe"),
    (PREFIX + "Clearing Sync Cron", "61 * * * *"),
    (PREFIX + "Inventory Sync Cron", "0 0 30 2 *"),
    (PREFIX + "Max Concurrent Calls", "0"),
    (PREFIX + "Timeout Seconds", "ten"),
    (PREFIX + "Currency", "XXY"),
    (PREFIX + "Company Code", ""),
    (PREFIX + "AR Account", "12-100"),
    (PREFIX + "Material Code Field", "sku"),
    (PREFIX + "Webhook Secret", "whsec_short"),
    (PREFIX + "Client Certificate", "not a certificate"),
    (
        PREFIX + "Client Certificate Key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[k for k, _ in BAD_VALUES])
def test_each_bad_value_shows_the_apis_message_next_to_its_field(
    console: httpx.Client, console_site: ConsoleSite, key: str, value: str
) -> None:
    before = trail(console_site, limit=1)
    api = console_site.admin.put(f"/config/{key}", json={"value": value})
    assert api.status_code == 422, api.text
    answer = set_value(console, key, value)
    assert answer.status_code == 422
    assert field_error(answer.text, slug(key)) == api.json()["detail"]
    assert f'aria-describedby="{slug(key)}_error"' in answer.text
    if SPECS[key].secret:  # what was typed for a secret is not sent back either
        assert value not in answer.text
    assert trail(console_site, limit=1) == before  # nothing stored, nothing audited


def test_a_secret_is_never_shown_and_an_empty_field_changes_nothing(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    saved = set_value(console, SECRET, NEW_SECRET)
    assert saved.status_code == 303
    flash = saved.cookies[FLASH_COOKIE]
    assert NEW_SECRET not in flash
    assert URLSafeTimedSerializer("any").loads_unsafe(flash)[1] == f"Saved {SECRET} (secret)."
    page = console.get("/console/settings")
    assert NEW_SECRET not in page.text and "sim-secret" not in page.text
    assert f"Saved {SECRET} (secret)." in page.text
    field = re.search(rf'<input id="{slug(SECRET)}-value"[^>]*>', page.text)
    assert field is not None
    assert 'value=""' in field[0] and 'placeholder="unchanged; type to replace"' in field[0]
    assert off_thread(stored(console_site, SECRET)) == NEW_SECRET

    before = trail(console_site, limit=1)
    empty = set_value(console, SECRET, "")
    assert empty.status_code == 422
    assert field_error(empty.text, slug(SECRET)) == (
        f"{SECRET}: type the new value to replace the stored one (it is never shown), or use "
        "Reset to clear it"
    )
    assert trail(console_site, limit=1) == before
    assert off_thread(stored(console_site, SECRET)) == NEW_SECRET

    with_nul = set_value(console, PREFIX + "Client ID", "abc\x00def")
    assert with_nul.status_code == 422
    assert field_error(with_nul.text, slug(PREFIX + "Client ID")) == (
        f"{PREFIX}Client ID: must not contain NUL characters"
    )

    reset = set_value(console, SECRET, "", action="reset")
    assert reset.status_code == 303
    assert off_thread(stored(console_site, SECRET)) is None
    assert trail(console_site, limit=1)[0]["new_value"] is None


def test_reset_goes_back_to_the_default(console: httpx.Client, console_site: ConsoleSite) -> None:
    key = PREFIX + "Timeout Seconds"
    assert set_value(console, key, "17").status_code == 303
    assert console_site.admin.get("/config").json()[key] == "17"
    reset = set_value(console, key, "17", action="reset")
    assert reset.status_code == 303
    page = console.get(reset.headers["location"]).text
    assert f"Reset {key}: it is now its default, 60." in page
    assert console_site.admin.get("/config").json()[key] == "60"


def test_unknown_keys_actions_and_forms_without_the_token_are_refused(
    console: httpx.Client,
) -> None:
    unknown = set_value(console, "Base URL", "https://x.example")
    assert unknown.status_code == 404
    assert (
        "unknown configuration key &#39;Base URL&#39;; GET /config lists the keys" in unknown.text
    )
    odd = set_value(console, CODE, "2000", action="delete")
    assert odd.status_code == 422 and field_error(odd.text, slug(CODE)) == "Use Save or Reset."
    refused = console.post("/console/settings/value", data={"key": CODE, "value": "2000"})
    assert refused.status_code == 403
    refused = console.post("/console/settings/revenue-rules", data={"rows": "0"})
    assert refused.status_code == 403


def test_revenue_rules_are_validated_as_the_api_validates_them(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    before = console_site.admin.get("/config").json()["revenue-rules"]
    rows = [
        {"department": "LAB", "gl_account": "41000100"},
        {"department": "LAB", "gl_account": "41000101"},
    ]
    api = console_site.admin.put("/config/revenue-rules", json=rows)
    assert api.status_code == 422
    dupes = console.post("/console/settings/revenue-rules", data=rules_form(console, rows))
    assert dupes.status_code == 422
    assert field_error(dupes.text, "rules") == api.json()["detail"]
    assert field_error(dupes.text, "department_1") == "department: 'LAB' appears in an earlier row"

    bad = [
        {"department": "", "gl_account": "41000100"},
        {"department": "OPD", "gl_account": "4100020O0000", "profit_center": "pc 1"},
        {"department": "X" * 51, "gl_account": "41000300", "cost_center": "CC\t1"},
    ]
    answer = console.post("/console/settings/revenue-rules", data=rules_form(console, bad))
    assert answer.status_code == 422
    assert field_error(answer.text, "department_0") == (
        "department: String should have at least 1 character"
    )
    assert field_error(answer.text, "gl_account_1") == (
        "gl_account: String should match pattern '^[A-Z0-9]{1,10}$'"
    )
    assert field_error(answer.text, "profit_center_1") == (
        "profit_center: String should match pattern '^[A-Z0-9]{1,10}$'"
    )
    assert field_error(answer.text, "cost_center_2") == (
        "cost_center: must not contain control characters"
    )
    assert console_site.admin.get("/config").json()["revenue-rules"] == before


def test_blank_and_removed_rows_are_dropped_and_a_stale_table_is_refused(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    rows = [
        {"department": "LAB", "gl_account": "41000100", "profit_center": "PC100"},
        {"department": "OPD", "gl_account": "41000200", "remove": "yes"},
        {"department": "", "gl_account": "", "profit_center": " "},
    ]
    data = rules_form(console, rows)
    # someone else changes the rules after the page was shown
    other = console_site.admin.put(
        "/config/revenue-rules", json=[{"department": "ER", "gl_account": "41000900"}]
    )
    assert other.status_code == 200
    stale = console.post("/console/settings/revenue-rules", data=data)
    assert stale.status_code == 409
    assert field_error(stale.text, "rules") == (
        "The revenue rules changed while you were looking at them: nothing was saved. In force "
        "now: ER=41000900. Your table is below; save it again to replace them."
    )
    assert 'value="OPD"' in stale.text  # the table as posted, for a second try

    saved = console.post("/console/settings/revenue-rules", data=rules_form(console, rows))
    assert saved.status_code == 303
    assert console_site.admin.get("/config").json()["revenue-rules"] == [
        {"department": "LAB", "gl_account": "41000100", "profit_center": "PC100",
         "cost_center": None},
    ]  # fmt: skip
    entry = trail(console_site, limit=1)[0]
    assert (entry["key"], entry["actor"]) == ("revenue-rules", "console")
    assert (entry["old_value"], entry["new_value"]) == ("ER=41000900", "LAB=41000100")


def test_the_trail_is_paged_newest_first_and_filtered(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    for n in range(60):
        assert set_value(console, PREFIX + "Timeout Seconds", str(n + 1)).status_code == 303
    first = console.get("/console/settings").text
    changes = re.findall(r'<td class="change">(\d+|<span[^>]*>not set</span>) → (\d+)</td>', first)
    assert [int(new) for _old, new in changes] == list(range(60, 10, -1))
    older = re.search(r'<a href="(/console/settings\?audit_cursor=[^"#]+)#trail">Older', first)
    assert older is not None
    second = console.get(unescape(older[1])).text
    changes = re.findall(r'<td class="change">(\d+|<span[^>]*>not set</span>) → (\d+)</td>', second)
    assert [int(new) for _old, new in changes][:10] == list(range(10, 0, -1))
    assert "Newest changes" in second

    only = console.get("/console/settings", params={"audit_key": CODE}).text
    keys = re.findall(r"<td>(SAP Integration - [^<]+|revenue-rules)</td>", only)
    assert keys == [CODE]  # the seeded company code only

    bad = console.get("/console/settings", params={"audit_cursor": "nonsense"})
    assert bad.status_code == 422
    assert "cursor: not a cursor this service issued" in bad.text
