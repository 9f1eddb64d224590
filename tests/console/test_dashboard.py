"""The FinOps dashboard in the admin, on hand-made events whose figures are worked out by
hand: prices of $1/$2 (big-1) and $0.10/$0.20 (small-1) per million input/output tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.rollups import rollups_update
from console.models import PlannedFeature
from finops.models import Tenant
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

M = 1_000_000
NOW = datetime.now(UTC)
RECENT = (NOW - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
OLDER = RECENT - timedelta(days=17)  # in the 30-day window, not in the 7-day one
HOSTILE = "<b>bold</b>&<script>alert(1)</script>"


def _event(event_id: str, at: datetime, **fields) -> dict:
    return event(**{"event_id": event_id, "timestamp": at.isoformat(), "prompt_template": None,
                    "cached_input_tokens": 0} | fields)  # fmt: skip


@pytest.fixture
def ledger(operator, acme, globex) -> None:
    """acme is enterprise, globex pro, initech free."""
    TenantFactory(slug="initech", tier=Tenant.Tier.FREE)
    ModelPriceFactory(model="big-1", input_per_million=1, output_per_million=2)
    ModelPriceFactory(model="small-1", input_per_million="0.1", output_per_million="0.2")
    events = [
        _event("e1", RECENT, tenant="acme", feature="extract", model="big-1",
               routing_tier="premium", input_tokens=M, output_tokens=900_000),  # $2.80
        _event("e2", RECENT, tenant="acme", feature="chat", model="small-1",
               routing_tier="cheap", input_tokens=M, output_tokens=M),  # $0.30
        _event("e3", RECENT, tenant="globex", feature="chat", model="big-1",
               routing_tier="cheap", input_tokens=2 * M, output_tokens=0),  # $2.00
        _event("e4", RECENT, tenant="initech", feature=HOSTILE, model="small-1",
               input_tokens=M, output_tokens=0),  # $0.10, no routing tier
        _event("e5", OLDER, tenant="acme", feature="chat", model="small-1",
               input_tokens=M, output_tokens=0),  # $0.10
    ]  # fmt: skip
    response = post_events(operator, {"events": events})
    assert response.status_code == 202, response.json()
    rollups_update()
    PlannedFeature.objects.create(name="contract <review>", reuses=Feature.objects.get(key="chat"),
                                  launch_date=NOW.date())  # fmt: skip


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def _row(page: str, row_id_or_text: str) -> str:
    match = re.search(rf"<tr\b(?:(?!</tr>).)*{re.escape(row_id_or_text)}.*?</tr>", page, re.S)
    assert match, f"no row with {row_id_or_text!r}"
    text = re.sub(r"<title>.*?</title>|<[^>]+>", " ", match.group(0), flags=re.S)
    return re.sub(r"\s+", " ", text).strip()


def test_staff_see_the_figures_of_the_window(staff, ledger) -> None:
    response = staff.get("/admin/dashboard/", {"days": 7})
    assert response.status_code == 200
    page = response.content.decode()

    assert 'id="window-total">5.20 USD<' in page  # 2.80 + 0.30 + 2.00 + 0.10
    # Cost by tenant tier, every tier listed.
    assert _row(page, "<td>Enterprise</td>") == "Enterprise 2 3.10 USD 59.6%"
    assert _row(page, "<td>Pro</td>") == "Pro 1 2.00 USD 38.5%"
    assert _row(page, "<td>Free</td>") == "Free 1 0.10 USD 1.9%"
    assert 'id="tier-cost-chart"' in page and "Enterprise: 3.10 USD, 2 calls" in page
    # Routing mix: the three routed calls (initech's named no tier), two on the cheap tier.
    assert 'id="cheap-share">66.7%<' in page
    assert _row(page, "premium · big-1") == "premium · big-1 1 33.3% 2.80 USD 54.9%"
    assert _row(page, "cheap · big-1") == "cheap · big-1 1 33.3% 2.00 USD 39.2%"
    assert _row(page, "cheap · small-1") == "cheap · small-1 1 33.3% 0.30 USD 5.9%"
    routing_chart = re.search(r'<svg id="routing-mix-chart".*?</svg>', page, re.S).group(0)
    assert routing_chart.count('<rect class="bar"') == 6  # calls and cost, 3 segments each
    # Daily cost by feature: one day, three features stacked.
    daily = re.search(r'<svg id="daily-cost-chart".*?</svg>', page, re.S).group(0)
    assert daily.count('<rect class="bar"') == 3
    assert f"{RECENT:%Y-%m-%d} extract: 2.80 USD" in daily
    assert f"{RECENT:%Y-%m-%d} chat: 2.30 USD" in daily
    # Every metric, with its status; those without data say so.
    assert _row(page, 'id="metric-routing_cheap_share"').startswith(
        "Model routing: share of calls on a cheap tier 66.7% below 20.0% healthy"
    )
    assert "no data" in _row(page, 'id="metric-retrieval_hit_rate"')
    assert page.count('class="metric metric-') == 8
    # The projection and the planned feature, names escaped.
    assert 'id="projection-chart"' in page
    assert "contract &lt;review&gt;" in page
    # Feature keys come from clients: escaped wherever they are shown.
    assert "&lt;b&gt;bold&lt;/b&gt;&amp;&lt;script&gt;" in page
    assert "<script>alert(1)" not in page and "<b>bold</b>" not in page


def test_the_window_selector_changes_the_figures(staff, ledger) -> None:
    page = staff.get("/admin/dashboard/", {"days": 30}).content.decode()
    assert 'id="window-total">5.30 USD<' in page
    assert _row(page, "<td>Enterprise</td>") == "Enterprise 3 3.20 USD 60.4%"
    assert "<strong>30 days</strong>" in page and 'href="?days=7"' in page
    # Anything but a choice is the default window.
    page = staff.get("/admin/dashboard/", {"days": "x"}).content.decode()
    assert "<strong>30 days</strong>" in page


def test_cost_is_sliced_by_the_rollups_slices(staff, ledger) -> None:
    # No event names a region: all of it is "(not set)".
    page = staff.get("/admin/dashboard/", {"days": 7}).content.decode()
    assert _row(page, "<td>(not set)</td>") == "(not set) 4 5.20 USD 100.0%"
    assert "<strong>region</strong>" in page and 'href="?days=7&amp;by=provider"' in page
    page = staff.get("/admin/dashboard/", {"days": 7, "by": "routing_tier"}).content.decode()
    slices = re.search(r'<table id="slice-costs">.*?</table>', page, re.S).group(0)
    assert _row(slices, "<td>premium</td>") == "premium 1 2.80 USD 53.8%"
    assert _row(slices, "<td>cheap</td>") == "cheap 2 2.30 USD 44.2%"
    assert _row(slices, "<td>(not set)</td>") == "(not set) 1 0.10 USD 1.9%"
    assert 'id="slice-cost-chart"' in page
    # Anything but a slice is the region.
    assert "<strong>region</strong>" in staff.get("/admin/dashboard/", {"by": "x"}).content.decode()


def test_the_dashboard_reads_a_few_rollup_queries_never_the_events(staff, ledger) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert staff.get("/admin/dashboard/").status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sql if "ingestion_usageevent" in s]
    assert len([s for s in sql if "billing_usagerollup" in s]) <= 6
    assert len(sql) <= 13


def test_an_empty_ledger_renders_with_no_data(staff, db) -> None:
    page = staff.get("/admin/dashboard/").content.decode()
    assert 'id="window-total">0.00 USD<' in page
    assert "No usage in the window." in page
    assert "No call named a routing tier in the window." in page
    assert page.count('class="metric metric-no_data"') == 8


def test_only_staff_see_it_and_the_admin_index_links_it(staff, db) -> None:
    assert Client().get("/admin/dashboard/").url == "/admin/login/?next=/admin/dashboard/"
    user = get_user_model().objects.create_user("someone", "x@example.com", "pw")
    client = Client()
    client.force_login(user)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    assert 'href="/admin/dashboard/"' in staff.get("/admin/").content.decode()
