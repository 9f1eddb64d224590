"""The admin index and the dashboard in a real browser (Playwright driving Debian's
Chromium, headless) on the demo data: the Dashboard row is laid out like every model row,
money reads rounded, and the screenshots are real pictures. The screenshots go to the
test's temporary directory, never into the repository."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image  # Pillow comes with reportlab

from billing.rollups import rollups_update
from ops.demo import demo_seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWPORT = {"width": 1280, "height": 900}
# A number with more than six decimals: an exact figure shown where people read.
LONG_DECIMAL = re.compile(r"\d\.\d{7,}")

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)"),
]


def _assert_a_picture(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (VIEWPORT["width"], VIEWPORT["height"])
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
    # Text, the header bar and the links: far more than the few colors of a blank page.
    assert colors is None or len(colors) > 50, f"{path.name} looks blank"


def test_the_admin_index_and_dashboard_look_right(live_server, tmp_path, monkeypatch) -> None:
    from playwright.sync_api import sync_playwright

    demo_seed(now=timezone.now(), days=10)
    rollups_update()
    get_user_model().objects.create_user("finops-staff", "s@example.com", "s3cret-pw!",
                                         is_staff=True, is_superuser=True)  # fmt: skip
    # Playwright's sync API runs an event loop in this thread; the live server's own
    # threads do the database work.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        page.goto(f"{live_server.url}/admin/")
        page.fill("#id_username", "finops-staff")
        page.fill("#id_password", "s3cret-pw!")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        page.screenshot(path=str(tmp_path / "admin-index.png"))

        # The Dashboard row: a module of the app list's column, its row and name cell as
        # wide as those of every model row, its link where theirs start, on one line.
        dashboard = page.locator("#finops-dashboard-link")
        modules = page.locator("#content-main > .module")
        assert modules.first.get_attribute("id") == "finops-dashboard-link"
        module_box = dashboard.bounding_box()
        for other in (modules.nth(1), modules.last):
            box = other.bounding_box()
            assert (box["x"], box["width"]) == (module_box["x"], module_box["width"])
        row = dashboard.locator("tr.model-dashboard").bounding_box()
        name = dashboard.locator("tr.model-dashboard th[scope=row]").bounding_box()
        link = dashboard.locator("tr.model-dashboard th[scope=row] a").bounding_box()
        others = page.locator("#content-main .module:not(#finops-dashboard-link) tr[class^=model-]")
        assert others.count() > 10
        for i in range(others.count()):
            other = others.nth(i)
            label = other.locator("th").inner_text()
            box = other.bounding_box()
            assert (box["x"], box["width"]) == (row["x"], row["width"]), label
            assert abs(box["height"] - row["height"]) <= 1, label
            assert abs(other.locator("th a").bounding_box()["x"] - link["x"]) <= 1, label
            # Its name cell takes the row but for the link columns, as theirs do.
            assert name["width"] >= other.locator("th").bounding_box()["width"], label
        assert link["height"] < 25 and link["width"] > 50  # one line, not a letter a line
        view = dashboard.locator("tr.model-dashboard a.viewlink")
        assert view.inner_text() == "View"
        assert view.bounding_box()["x"] + view.bounding_box()["width"] < row["x"] + row["width"]
        assert not LONG_DECIMAL.search(page.locator("body").inner_text())

        # The quarterly report's row sits under it, laid out alike.
        quarterly = dashboard.locator("tr.model-quarterly").bounding_box()
        assert (quarterly["x"], quarterly["width"]) == (row["x"], row["width"])
        page.click("#finops-dashboard-link tr.model-quarterly th a")
        page.wait_for_url(f"{live_server.url}/admin/reports/quarterly/")
        text = page.locator("body").inner_text()
        assert re.search(r"\d\.\d\d USD", text)
        assert not LONG_DECIMAL.search(text), LONG_DECIMAL.search(text)
        page.screenshot(path=str(tmp_path / "admin-quarterly.png"))

        page.goto(f"{live_server.url}/admin/")
        page.click("#finops-dashboard-link tr.model-dashboard th a")
        page.wait_for_url(f"{live_server.url}/admin/dashboard/")
        page.locator("#daily-cost-chart").wait_for()
        text = page.locator("body").inner_text()
        assert re.search(r"\d\.\d\d USD", text)
        assert not LONG_DECIMAL.search(text), LONG_DECIMAL.search(text)
        page.screenshot(path=str(tmp_path / "admin-dashboard.png"))
        browser.close()

    _assert_a_picture(tmp_path / "admin-index.png")
    _assert_a_picture(tmp_path / "admin-dashboard.png")
    _assert_a_picture(tmp_path / "admin-quarterly.png")
