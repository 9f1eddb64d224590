"""Retirement reviews end to end: opened, decided, the lifecycle walked, the guard acting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from billing.guard import guard_decide
from billing.rollups import rollups_update
from console.models import RetirementReview
from console.reviews import lifecycles_advance, reviews_open
from finops.models import Tenant
from ingestion.models import Feature
from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NOW = datetime.now(UTC)


@pytest.fixture
def usage(operator, acme, globex) -> None:
    """20 features: feature_00 called once, the others 5 to 24 times, over the last days."""
    events = []
    for f in range(20):
        calls = 1 if f == 0 else 4 + f
        for i in range(calls):
            tenant = "globex" if f == 0 else ("acme", "globex")[i % 2]
            at = (NOW - timedelta(days=1 + i % 20)).isoformat()
            events.append(event(event_id=f"f{f}-{i}", tenant=tenant, feature=f"feature_{f:02}",
                                timestamp=at))  # fmt: skip
    for start in range(0, len(events), 500):
        assert post_events(operator, {"events": events[start : start + 500]}).status_code == 202
    rollups_update()
    Feature.objects.filter(key="feature_00").update(fallback_model="gpt-4o-mini-2024-07-18")


def staff_client() -> tuple[Client, object]:
    staff = get_user_model().objects.create_superuser("staff", "s@example.com", "pw")
    client = Client()
    client.force_login(staff)
    return client, staff


def test_the_least_used_feature_is_reviewed_retired_and_enforced(usage, settings) -> None:
    settings.FINOPS_GUARD_POLICY_TTL = 0
    result = reviews_open(now=NOW)
    review = RetirementReview.objects.get(kind="feature")
    assert review.subject == "feature_00" and result.opened >= 1
    assert (review.calls, review.tenants, review.decision) == (1, ["globex"], "open")
    assert review.last_seen is not None and review.cost > 0
    assert reviews_open(now=NOW).opened == 0  # an open review is not opened twice

    client, staff = staff_client()
    page = client.get(f"/admin/console/retirementreview/{review.id}/change/")
    assert page.status_code == 200 and "feature_00" in page.content.decode()
    today = NOW.date()
    response = client.post(f"/admin/console/retirementreview/{review.id}/change/", {
        "decision": "retire", "deprecate_on": today, "throttle_on": today + timedelta(days=1),
        "sunset_on": today + timedelta(days=2), "note": "Nobody uses it."})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    review.refresh_from_db()
    assert (review.decision, review.decided_by) == ("retire", staff)
    assert review.decided_at is not None
    assert Feature.objects.get(key="feature_00").status == "deprecated"

    tenant = Tenant.objects.get(slug="globex")

    def ask(at: datetime) -> tuple[str, str | None, str]:
        lifecycles_advance(now=at)
        answer = guard_decide(tenant=tenant, feature_key="feature_00",
                              model="gpt-4o-2024-08-06", now=at)  # fmt: skip
        return answer.decision, answer.error_type, answer.model

    assert ask(NOW) == ("allow", None, "gpt-4o-2024-08-06")  # deprecated: a warning only
    assert ask(NOW + timedelta(days=1)) == ("downgrade", "feature_sunset",
                                            "gpt-4o-mini-2024-07-18")  # fmt: skip
    assert ask(NOW + timedelta(days=2))[:2] == ("block", "feature_sunset")


def test_retiring_a_feature_needs_its_dates_in_order(usage) -> None:
    reviews_open(now=NOW)
    review = RetirementReview.objects.get(kind="feature")
    client, _ = staff_client()
    today = NOW.date()
    response = client.post(f"/admin/console/retirementreview/{review.id}/change/", {
        "decision": "retire", "deprecate_on": today + timedelta(days=5),
        "throttle_on": today, "sunset_on": today + timedelta(days=9)})  # fmt: skip
    assert response.status_code == 200
    assert "deprecate &lt;= throttle &lt;= sunset" in response.content.decode()
    response = client.post(f"/admin/console/retirementreview/{review.id}/change/",
                           {"decision": "consolidate"})  # fmt: skip
    assert "Name the feature it is consolidated into" in response.content.decode()
    review.refresh_from_db()
    assert review.decision == "open"


def test_a_kept_subject_rests_for_90_days(usage) -> None:
    reviews_open(now=NOW)
    review = RetirementReview.objects.get(kind="model")
    client, _ = staff_client()
    client.post(f"/admin/console/retirementreview/{review.id}/change/", {"decision": "keep"})
    review.refresh_from_db()
    assert review.decision == "keep"
    assert not RetirementReview.objects.filter(kind="model", decision="open").exists()
    reviews_open(now=NOW + timedelta(days=10))
    assert not RetirementReview.objects.filter(kind="model", decision="open").exists()
    RetirementReview.objects.filter(id=review.id).update(decided_at=NOW - timedelta(days=91))
    reviews_open(now=NOW)
    assert RetirementReview.objects.filter(kind="model", subject=review.subject,
                                           decision="open").exists()  # fmt: skip


def test_run_jobs_opens_reviews(usage) -> None:
    from io import StringIO

    out = StringIO()
    call_command("run_jobs", stdout=out)
    assert "open-retirement-reviews: " in out.getvalue()
    assert RetirementReview.objects.filter(kind="feature", subject="feature_00").exists()
