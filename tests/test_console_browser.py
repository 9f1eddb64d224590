"""The FinOps dashboard and the quarterly report in a real browser (Playwright driving
Debian's Chromium, headless): staff log into the admin on the demo data, open each page
and every chart draws data; the report's PDF downloads. Screenshots and the PDF are kept
in test-artifacts/."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from pypdf import PdfReader

from billing.rollups import rollups_update
from ops.demo import demo_seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)"),
]


def test_staff_log_in_and_the_dashboard_charts_draw_the_demo_data(live_server, monkeypatch) -> None:
    from playwright.sync_api import sync_playwright

    demo_seed(now=timezone.now(), days=10)
    rollups_update()
    get_user_model().objects.create_user("finops-staff", "s@example.com", "s3cret-pw!",
                                         is_staff=True)  # fmt: skip
    # Playwright's sync API runs an event loop in this thread; the live server's own
    # threads do the database work.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/admin/")
        assert "/admin/login/" in page.url
        page.fill("#id_username", "finops-staff")
        page.fill("#id_password", "s3cret-pw!")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        page.click("#finops-dashboard-link a")
        page.wait_for_url(f"{live_server.url}/admin/dashboard/")

        for chart, at_least in (("#daily-cost-chart", 10), ("#tier-cost-chart", 3),
                                ("#routing-mix-chart", 4), ("#projection-chart", 10)):  # fmt: skip
            assert page.locator(chart).is_visible(), chart
            assert page.locator(f"{chart} rect.bar").count() >= at_least, chart
        for chart in ("#daily-cost-chart", "#tier-cost-chart", "#projection-chart"):
            box = page.locator(f"{chart} rect.bar").first.bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0, chart
        assert page.locator(".legend", has_text="chat_assistant").first.is_visible()
        assert page.locator("#metrics tr.metric").count() == 8
        assert page.locator("#metrics svg.gauge rect.bar").count() >= 5
        assert page.locator("#metrics svg.gauge line.threshold").count() >= 5
        assert page.locator("#month-projected").inner_text().endswith(" USD")
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        # The window selector.
        page.click("a[href='?days=7']")
        page.wait_for_url(f"{live_server.url}/admin/dashboard/?days=7")
        assert page.locator("#daily-cost-chart rect.bar").count() >= 7
        browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_staff_read_the_quarterly_report_with_its_charts_and_download_its_pdf(
    live_server, monkeypatch
) -> None:
    from playwright.sync_api import sync_playwright

    from console.economics import feature_reach_count

    now = timezone.now()
    demo_seed(now=now, days=10)
    rollups_update()
    feature_reach_count(now=now)
    get_user_model().objects.create_user("finops-staff", "s@example.com", "s3cret-pw!",
                                         is_staff=True)  # fmt: skip
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "finops-staff")
        page.fill("#id_password", "s3cret-pw!")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        page.click("#finops-dashboard-link a[aria-describedby=finops-quarterly]")
        page.wait_for_url(f"{live_server.url}/admin/reports/quarterly/")

        assert page.locator("#total-spend").inner_text().endswith(" USD")
        # Six demo features, each a bar; routing, caches and batch have saved something.
        assert page.locator("#feature-cost-chart rect.bar").count() == 6
        assert page.locator("#lever-chart rect.bar").count() >= 4
        box = page.locator("#lever-chart rect.bar").first.bounding_box()
        assert box is not None and box["width"] > 0
        assert page.locator("#tier-margins tbody tr").count() == 3
        assert page.locator("#cross-subsidy", has_text="subsidises").is_visible()
        assert page.locator("#optimization-log tbody tr", has_text="document_summarization"
                            ).count() == 1  # fmt: skip
        assert page.locator("#recommendations tbody tr").count() >= 1
        assert page.locator("#feature-reach tbody tr").count() == 6
        page.screenshot(path=str(ARTIFACTS / "quarterly.png"), full_page=True)

        with page.expect_download() as download:
            page.click("#quarterly-pdf")
        pdf = Path(download.value.path()).read_bytes()
        browser.close()
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert pdf.startswith(b"%PDF") and len(reader.pages) >= 2
    for heading in ("quarterly FinOps report", "Cost per feature", "Savings by lever",
                    "Recommendations", "Margin by tier", "Optimization log"):  # fmt: skip
        assert heading in text, heading
    assert "document_summarization" in text
    (ARTIFACTS / "quarterly.pdf").write_bytes(pdf)
