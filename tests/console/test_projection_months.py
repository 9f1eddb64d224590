"""Six months ahead, the projections kept on each month's first day and their accuracy,
on flat histories whose answers are worked out by hand: a feature that cost the same
every day is projected at that cost for every day to come."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.rollups import rollups_update
from console.models import PlannedFeature, ProjectionSnapshot
from console.projection import (
    projection_accuracy,
    projection_compute,
    projection_months,
    projections_snapshot,
)
from finops.models import Tenant
from finops.periods import MONTH, period_start
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

M = 1_000_000


def _month_after(first: date, months: int = 1) -> date:
    for _ in range(months):
        first = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first


def _month_before(first: date) -> date:
    return (first - timedelta(days=1)).replace(day=1)


def _days(first: date) -> int:
    return (_month_after(first) - first).days


def _flat(operator, days: list[datetime]) -> None:
    """chat (acme) $2.00 and search (globex) $0.50 on each day (dollar-1: $1 per 1M)."""
    ModelPriceFactory(model="dollar-1", input_per_million=1, output_per_million=0)
    events = []
    for day in days:
        at = (day + timedelta(hours=12)).isoformat()
        events.append(event(event_id=f"c{day:%Y%m%d}", tenant="acme", feature="chat",
                            model="dollar-1", prompt_template=None, input_tokens=2 * M,
                            cached_input_tokens=0, output_tokens=0, timestamp=at))  # fmt: skip
        events.append(event(event_id=f"s{day:%Y%m%d}", tenant="globex", feature="search",
                            model="dollar-1", prompt_template=None, input_tokens=M // 2,
                            cached_input_tokens=0, output_tokens=0, timestamp=at))  # fmt: skip
    response = post_events(operator, {"events": events})
    assert response.status_code == 202, response.json()
    rollups_update()


@pytest.fixture
def recent(operator, acme, globex):
    """The 14 days before today, flat."""
    now = timezone.now()
    today = period_start("day", now)
    _flat(operator, [today - timedelta(days=x) for x in range(1, 15)])
    return now


def test_six_months_ahead_with_the_planned_features(recent) -> None:
    now = recent
    this_month = period_start(MONTH, now).date()
    second = _month_after(this_month, 2)
    PlannedFeature.objects.create(name="chat-voice", reuses=Feature.objects.get(key="chat"),
                                  launch_date=second)  # fmt: skip

    months = projection_months(now=now)

    assert [m.month for m in months] == [_month_after(this_month, i) for i in range(6)]
    # This month: as the month-end projection (actual so far, the lines for the rest).
    current = projection_compute(now=now)
    assert (months[0].actual, months[0].projected) == (current.actual, current.projected)
    # Next month: $2.50 a day (chat $2 + search $0.50) on each of its days; from the month
    # after on, chat-voice adds 2.5 x chat's $2 = $5 a day: $7.50 a day.
    first = _month_after(this_month)
    assert months[1].projected == Decimal("2.5") * _days(first)
    for m in months[2:]:
        assert m.projected == Decimal("7.5") * _days(m.month)
        assert m.actual == 0
    assert months[1].as_json() == {"month": f"{first:%Y-%m}", "actual_to_date": "0.00",
                                   "projected": f"{Decimal('2.5') * _days(first):.2f}"}  # fmt: skip

    # A tenant's own months: its features only, never the planned ones.
    globex = projection_months(now=now, tenant=Tenant.objects.get(slug="globex"), months=3)
    assert [m.projected for m in globex[1:]] == [
        Decimal("0.5") * _days(_month_after(this_month, i)) for i in (1, 2)
    ]


@pytest.fixture
def before_this_month(operator, acme, globex, settings):
    """The 14 days before this month's first day, flat: what the projection made on the
    first day is fitted on (the backfill window widened, for a run late in the month)."""
    settings.FINOPS_BACKFILL_DAYS = 60
    first = period_start(MONTH, timezone.now())
    _flat(operator, [first - timedelta(days=x) for x in range(1, 15)])
    return first


def test_the_projections_of_a_months_first_day_are_kept_once(before_this_month) -> None:
    first = before_this_month
    later = first + timedelta(days=1, hours=3)  # the first day's run was missed

    run = projections_snapshot(now=later)

    kept = list(ProjectionSnapshot.objects.order_by("month"))
    assert run.made == 6 and [s.made_on for s in kept] == [first.date()] * 6
    assert [s.months_ahead for s in kept] == [0, 1, 2, 3, 4, 5]
    # Made at the first day's midnight: $2.50 a day for every day of each month, also
    # this one (its days so far are no actual: the projection is the one of its start).
    assert [s.projected for s in kept] == [Decimal("2.5") * _days(s.month) for s in kept]
    assert all(s.actual is None for s in kept)

    # Idempotent, and never overwritten: a plan recorded later changes no kept projection.
    PlannedFeature.objects.create(name="chat-voice", reuses=Feature.objects.get(key="chat"),
                                  launch_date=first.date())  # fmt: skip
    assert projections_snapshot(now=later + timedelta(days=1)).made == 0
    assert [s.projected for s in ProjectionSnapshot.objects.order_by("month")] == [
        s.projected for s in kept]  # fmt: skip


def test_ended_months_get_their_actual_and_their_accuracy(before_this_month) -> None:
    first = before_this_month.date()
    last = _month_before(first)  # holds the 14 flat days: $2.50 x 14 = $35 actual
    earlier = _month_before(last)
    empty = _month_before(earlier)  # no cost at all
    fourth = _month_before(empty)
    for made_on, projected in ((last, "38"), (earlier, "42"), (empty, "28"), (fourth, "27")):
        ProjectionSnapshot.objects.create(month=last, made_on=made_on, projected=projected)
    ProjectionSnapshot.objects.create(month=empty, made_on=empty, projected="3")
    ProjectionSnapshot.objects.create(month=earlier, made_on=earlier, projected="0")

    run = projections_snapshot(now=before_this_month)

    assert run.made == 6  # this month and the five after it
    assert run.actuals == 6  # the six ended months' snapshots above (earlier's: $0)
    assert set(ProjectionSnapshot.objects.filter(month=last).values_list("actual", flat=True)) == {
        Decimal(35)}  # fmt: skip
    accuracy = projection_accuracy(now=before_this_month)
    assert [m.month for m in accuracy] == [last, earlier, empty]  # newest first
    latest = accuracy[0]
    assert latest.actual == 35
    # error = (projected - actual) / actual; flagged past 20%, either way:
    #   made on its first day:  (38 - 35) / 35 =  0.0857  ok
    #   a month ahead:          (42 - 35) / 35 =  0.2     ok (not past 20%)
    #   two months ahead:       (28 - 35) / 35 = -0.2     ok
    #   three months ahead:     (27 - 35) / 35 = -0.2286  flagged
    assert [(s.months_ahead, s.error, s.flagged) for s in latest.snapshots] == [
        (0, Decimal(3) / 35, False), (1, Decimal("0.2"), False), (2, Decimal("-0.2"), False),
        (3, Decimal(-8) / 35, True)]  # fmt: skip
    assert latest.as_json()["projections"][0] == {
        "made_on": last.isoformat(), "months_ahead": 0, "projected": "38.00",
        "error": "0.0857", "flagged": False}  # fmt: skip
    # A month without cost: no error to divide by; flagged when it was projected to cost.
    assert [(s.error, s.flagged) for s in accuracy[1].snapshots] == [(None, False)]
    assert [(s.error, s.flagged) for s in accuracy[2].snapshots] == [(None, True)]
    # The snapshots of this month and the next five are not over: no accuracy for them.
    assert ProjectionSnapshot.objects.filter(month__gte=first, actual__isnull=False).count() == 0


def test_the_job_is_on_the_schedule_and_says_what_it_did(before_this_month) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["snapshot-projections"]
    task = import_string(entry["task"])
    line = task(now=(before_this_month + timedelta(hours=1)).isoformat())
    assert line == "kept 6 month projection(s); set 0 ended month(s)' actual cost"
    assert task(now=before_this_month.isoformat()).startswith("kept 0 month projection(s)")


def test_the_projection_api_adds_the_months_and_the_accuracy(operator, acme_client, recent) -> None:
    last = _month_before(period_start(MONTH, datetime.now(UTC)).date())
    ProjectionSnapshot.objects.create(month=last, made_on=last, projected="50", actual="40")

    body = operator.get("/api/v1/projection").json()
    assert {"month", "as_of", "actual_to_date", "projected_month_end", "features", "planned",
            "daily"} <= set(body)  # fmt: skip
    assert len(body["months"]) == 6 and body["months"][0]["month"] == body["month"]
    assert body["months"][0]["projected"] == body["projected_month_end"]
    assert body["accuracy"] == [{"month": f"{last:%Y-%m}", "actual": "40.00", "projections": [
        {"made_on": last.isoformat(), "months_ahead": 0, "projected": "50.00",
         "error": "0.2500", "flagged": True}]}]  # fmt: skip  # (50 - 40) / 40

    own = acme_client.get("/api/v1/projection").json()
    assert own["tenant"] == "acme" and own["accuracy"] is None  # kept across tenants only
    first = _month_after(period_start(MONTH, datetime.now(UTC)).date())
    assert own["months"][1] == {"month": f"{first:%Y-%m}", "actual_to_date": "0.00",
                                "projected": f"{2 * _days(first)}.00"}  # fmt: skip  # chat $2
    assert acme_client.get("/api/v1/projection?tenant=globex").status_code == 404
    assert operator.get("/api/v1/projection?tenant=acme").json()["accuracy"] is None
