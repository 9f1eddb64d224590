"""The FinOps dashboard in a real browser (Playwright driving Debian's Chromium, headless):
staff log into the admin on the demo data, open the dashboard and every chart draws data.
The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

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
