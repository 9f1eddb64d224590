"""The portal in a real browser (Playwright driving Debian's Chromium, headless): a tenant
user logs in, sees the chart and downloads a statement PDF holding the total. The
screenshot is kept in test-artifacts/."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.rollups import rollups_update
from portal.services import tenant_user_create
from statements.models import Statement
from statements.services import statements_draft, statements_finalize
from tests.statements.test_statements import CLOSING, LAST_MONTH, post

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)"),
]


def test_a_tenant_user_logs_in_sees_the_chart_and_downloads_a_pdf(
    live_server, operator, acme, monkeypatch
) -> None:
    from playwright.sync_api import sync_playwright

    post(operator, 12, prefix="a")
    post(operator, 5, prefix="b", feature="chat_assistant", model="claude-3-5-sonnet-20241022")
    rollups_update()
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    statement = Statement.objects.get(tenant=acme, period=LAST_MONTH.date())
    tenant_user_create(tenant=acme, username="acme-user", password="s3cret-pw!")
    # Playwright's sync API runs an event loop in this thread; the live server's own
    # threads do the database work.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{live_server.url}/portal/")
        assert "/portal/login/" in page.url
        page.fill("#id_username", "acme-user")
        page.fill("#id_password", "s3cret-pw!")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/portal/")
        chart = page.locator("#daily-cost-chart")
        assert chart.is_visible()
        assert chart.locator("rect").count() >= 1
        assert page.locator(".legend", has_text="chat_assistant").is_visible()
        page.screenshot(path=str(ARTIFACTS / "portal.png"), full_page=True)
        with page.expect_download() as download:
            page.click(f"a[href='/portal/statements/{statement.id}/pdf']")
        pdf_bytes = Path(download.value.path()).read_bytes()
        browser.close()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf_bytes)).pages)
    assert statement.number in text
    assert f"{statement.total:,.2f} USD" in text
    assert (ARTIFACTS / "portal.png").stat().st_size > 10_000
