"""The quarterly FinOps report on a hand-made quarter: its KPIs worked out by hand, as an
API, a PDF and an admin page (the browser test draws its charts on the demo data)."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pypdf import PdfReader

from billing.rollups import rollups_update
from console.economics import feature_reach_count
from console.models import OptimizationDecision, RetirementReview
from console.quarterly import Quarter, quarterly_report
from finops.models import Tenant, TierPlan
from finops.periods import DAY, period_start
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
M = 1_000_000


@pytest.fixture
def quarter(operator):
    """Two days ago (the quarter holding it): acme (enterprise) 1M tokens of chat by u1
    (10.00); globex (free) 1M of chat by u1 (10.00) and 500k of notes by u2 (5.00).
    Total 25.00 by 3 users (u1 of each tenant is a different person). The previous
    quarter spent nothing. Feature `old` retired in the quarter, its review having
    counted 90.00 over 90 days; a routing decision on chat expected 5.00 a month."""
    now = timezone.now()
    day = period_start(DAY, now) - timedelta(days=2)
    q = Quarter.of(day)
    signup = q.start - timedelta(days=30)
    TenantFactory(slug="acme", tier=Tenant.Tier.ENTERPRISE, signup_at=signup)
    TenantFactory(slug="globex", tier=Tenant.Tier.FREE, signup_at=signup)
    TierPlan.objects.create(tier=Tenant.Tier.ENTERPRISE, monthly_price=2000)
    TierPlan.objects.create(tier=Tenant.Tier.FREE, monthly_price=0)
    ModelPriceFactory(model="q-1", input_per_million=10, output_per_million=10)
    at = (day + timedelta(hours=12)).isoformat()

    def call(event_id, tenant, feature, tokens, user):
        return event(event_id=event_id, tenant=tenant, feature=feature, model="q-1",
                     input_tokens=tokens, cached_input_tokens=0, output_tokens=0,
                     prompt_template=None, timestamp=at, user=user)  # fmt: skip

    response = post_events(operator, {"events": [
        call("a", "acme", "chat", M, "u1"), call("g1", "globex", "chat", M, "u1"),
        call("g2", "globex", "notes", M // 2, "u2"),
    ]})  # fmt: skip
    assert response.status_code == 202, response.json()
    rollups_update()
    feature_reach_count(now=now)
    RetirementReview.objects.create(
        kind=RetirementReview.Kind.FEATURE, subject="old", opened_at=day, calls=9,
        cost=Decimal(90), decision=RetirementReview.Decision.RETIRE, decided_at=day,
    )  # fmt: skip
    OptimizationDecision.objects.create(
        lever="routing", feature=Feature.objects.get(key="chat"), decided_on=day.date(),
        expected_monthly_saving=Decimal("5.00"),
    )  # fmt: skip
    return q, now


def test_the_quarters_kpis_are_worked_out_from_the_ledger(quarter) -> None:
    q, now = quarter
    report = quarterly_report(quarter=q, now=now)
    kpis = report.kpis()
    assert kpis["total_spend"] == Decimal("25.000000")
    assert kpis["previous_quarter_spend"] == 0 and kpis["change"] is None
    assert kpis["users"] == 3
    assert kpis["cost_per_user"] == Decimal("8.333333")  # 25.00 / 3
    assert kpis["retired_features"] == 1
    assert kpis["retirement_monthly_saving"] == Decimal("30.000000")  # 90.00 x 30 / 90
    features = {f["feature"]: f for f in report.features}
    assert features["chat"]["share"] == Decimal("0.8000")  # 20.00 of 25.00
    assert features["chat"]["cost_per_user"] == Decimal("10.000000")  # 20.00 by 2 users
    assert features["notes"]["users"] == 1
    data = report.as_json()
    (logged,) = data["optimization_log"]
    assert (logged["lever"], logged["feature"]) == ("routing", "chat")
    assert Decimal(logged["expected_monthly_saving"]) == 5
    tiers = {t["tier"]: t for t in data["economics"]["tiers"]}
    assert tiers["free"]["cost"] == "15.00" and Decimal(tiers["free"]["margin"]) == -15
    pairs = data["economics"]["cross_subsidy"]["pairs"]
    assert [p["statement"].split(" ")[:3] for p in pairs] == [["Enterprise", "subsidises",
                                                                "Free"]]  # fmt: skip


def test_the_quarterly_report_api_and_its_pdf(quarter, operator, acme_client) -> None:
    q, _ = quarter
    answer = operator.get(f"/api/v1/reports/quarterly?quarter={q.label}")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["kpis"]["total_spend"] == "25.000000"
    assert answer.json()["quarter"] == q.label
    # It holds every tenant's margin: operator keys only.
    assert acme_client.get(f"/api/v1/reports/quarterly?quarter={q.label}").status_code == 403
    assert acme_client.get(f"/api/v1/reports/quarterly/pdf?quarter={q.label}").status_code == 403
    for bad in ("2026-Q5", "2026-4", "Q4-2026", "0000-Q1", "9999-Q4"):
        refused = operator.get(f"/api/v1/reports/quarterly?quarter={bad}")
        assert refused.status_code == 400 and set(refused.json()) == {"quarter"}
    assert set(operator.get("/api/v1/reports/quarterly?quater=2026-Q1").json()) == {"quater"}

    pdf = operator.get(f"/api/v1/reports/quarterly/pdf?quarter={q.label}")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert f"finops-quarterly-{q.label}.pdf" in pdf["Content-Disposition"]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    parts = ("quarterly FinOps report", "25.00 USD", "Cost per feature", "Savings by lever",
             "Margin by tier", "Enterprise subsidises Free", "Optimization log")  # fmt: skip
    for part in (*parts, "chat"):
        assert part in text, part


def test_staff_read_the_quarterly_report_in_the_admin(quarter, admin_client) -> None:
    q, _ = quarter
    page = admin_client.get(f"/admin/reports/quarterly/?quarter={q.label}")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="total-spend">25.00 USD<' in html
    assert html.count('class="bar"') >= 2  # chat and notes on the cost per feature chart
    # No lever saved anything in this quarter: the chart says so instead of drawing.
    assert "No lever saved or would save anything in the quarter." in html
    assert "Enterprise subsidises Free" in html
    previous = admin_client.get(f"/admin/reports/quarterly/?quarter={q.previous().label}")
    assert 'id="total-spend">0.00 USD<' in previous.content.decode()
    wrong = admin_client.get("/admin/reports/quarterly/?quarter=soon")
    assert "A quarter is written YYYY-Qn" in wrong.content.decode()
    assert admin_client.get("/admin/").content.decode().count("/admin/reports/quarterly/") == 2


QUERY_VALUES = st.sampled_from(["", "2026-Q4", "0000-Q1", "9999-Q4", "2026-12-01T00:00:00Z",
                                "2026-12-01T00:30:00+05:00", "0001-01-01T00:00:00Z",
                                "9999-12-31T00:00:00Z", "acme", "nobody", "eu", "x" * 300,
                                "standard", "pro", "null"]) | st.text(max_size=12)  # fmt: skip


@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    st.sampled_from(["/api/v1/savings", "/api/v1/economics", "/api/v1/reports/quarterly",
                     "/api/v1/metrics"]),
    st.dictionaries(st.sampled_from(["from", "to", "tenant", "quarter", "region", "tag",
                                     "service_tier", "tenant_tier", "feature", "x"]),
                    QUERY_VALUES, max_size=4),
)  # fmt: skip
def test_no_query_makes_a_report_fail(operator, path, query) -> None:
    response = operator.get(path, query)
    assert response.status_code in (200, 400, 404), (path, query, response.content[:300])
