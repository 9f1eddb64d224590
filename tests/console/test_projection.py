"""The month-end projection on a feature whose daily cost is an exact line: the trend
is that line, and the projection is what the line says for the days left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.rollups import rollups_update
from console.models import PlannedFeature
from console.projection import projection_compute, trend_fit
from finops.models import Tenant
from finops.periods import MONTH, period_end, period_start
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _line(x: int) -> Decimal:
    """$3.00 today, 10 cents less for each day before."""
    return Decimal(3) + Decimal("0.1") * x


@pytest.fixture
def history(operator, acme, globex):
    """14 days of chat on the line (a dollar per million input tokens), $1 so far today,
    and 14 days of flat $0.50 search for globex."""
    ModelPriceFactory(model="dollar-1", input_per_million=1, output_per_million=0)
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events = []
    for x in range(-14, 0):
        at = (today + timedelta(days=x, hours=12)).isoformat()
        events.append(event(event_id=f"c{x}", tenant="acme", feature="chat", model="dollar-1",
                            input_tokens=int(_line(x) * 1_000_000), cached_input_tokens=0,
                            output_tokens=0, timestamp=at))  # fmt: skip
        events.append(event(event_id=f"s{x}", tenant="globex", feature="search",
                            model="dollar-1", input_tokens=500_000, cached_input_tokens=0,
                            output_tokens=0, timestamp=at))  # fmt: skip
    events.append(event(event_id="today", tenant="acme", feature="chat", model="dollar-1",
                        input_tokens=1_000_000, cached_input_tokens=0, output_tokens=0,
                        timestamp=today.isoformat()))  # fmt: skip
    response = post_events(operator, {"events": events})
    assert response.status_code == 202, response.json()
    rollups_update()
    return now, today


def test_the_trend_of_an_exact_line_is_that_line() -> None:
    trend = trend_fit([(x, _line(x)) for x in range(-14, 0)])
    assert (trend.intercept, trend.slope) == (Decimal(3), Decimal("0.1"))
    assert trend_fit([]).at(5) == 0
    assert trend_fit([(-1, Decimal(2))]).at(9) == 2
    assert trend_fit([(0, Decimal(10)), (1, Decimal(5))]).at(5) == 0  # never negative


def test_month_end_is_the_actual_cost_plus_the_line_for_the_days_left(history) -> None:
    now, today = history
    month_start = period_start(MONTH, now)
    days_left = (period_end(MONTH, month_start) - today).days  # today included
    in_month = range(-14, 0)
    chat_past = sum((_line(x) for x in in_month if today + timedelta(days=x) >= month_start),
                    Decimal(0))  # fmt: skip
    search_past = sum((Decimal("0.5") for x in in_month
                       if today + timedelta(days=x) >= month_start), Decimal(0))  # fmt: skip
    chat_rest = sum((_line(x) for x in range(days_left)), Decimal(0))  # today at $3, not $1
    search_rest = Decimal("0.5") * days_left

    result = projection_compute(now=now)

    by_feature = {f.feature: f for f in result.features}
    assert by_feature["chat"].actual == chat_past + 1
    assert by_feature["chat"].projected == chat_past + chat_rest
    assert by_feature["chat"].trend_per_day == Decimal("0.1")
    assert by_feature["search"].projected == search_past + search_rest
    assert result.projected == chat_past + chat_rest + search_past + search_rest
    assert result.actual == chat_past + 1 + search_past
    assert len(result.daily) == (period_end(MONTH, month_start) - month_start).days
    assert result.daily[-1][1] is None  # the month's last day is still to come

    globex_only = projection_compute(now=now, tenant=Tenant.objects.get(slug="globex"))
    assert [f.feature for f in globex_only.features] == ["search"]
    assert globex_only.projected == search_past + search_rest


def test_a_planned_feature_adds_its_step_from_its_launch_date(history) -> None:
    now, today = history
    launch = (today + timedelta(days=2)).date()
    PlannedFeature.objects.create(name="chat-voice", reuses=Feature.objects.get(key="chat"),
                                  launch_date=launch)  # fmt: skip
    month_end = period_end(MONTH, period_start(MONTH, now))
    days_after_launch = range(2, (month_end - today).days)
    expected = Decimal("2.5") * sum((_line(x) for x in days_after_launch), Decimal(0))
    before = projection_compute(now=now)

    (planned,) = before.planned
    assert (planned.name, planned.reuses, planned.projected) == ("chat-voice", "chat", expected)
    assert before.projected == sum((f.projected for f in before.features), Decimal(0)) + expected


def test_the_projection_api(operator, acme_client, history) -> None:
    body = operator.get("/api/v1/projection").json()
    assert body["month"] == f"{datetime.now(UTC):%Y-%m}"
    assert {f["feature"] for f in body["features"]} == {"chat", "search"}
    assert Decimal(body["projected_month_end"]) >= Decimal(body["actual_to_date"])

    own = acme_client.get("/api/v1/projection").json()
    assert own["tenant"] == "acme"
    assert [f["feature"] for f in own["features"]] == ["chat"]


def test_a_new_feature_is_fitted_from_its_first_day(operator, acme) -> None:
    ModelPriceFactory(model="dollar-1", input_per_million=1, output_per_million=0)
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    response = post_events(operator, {"events": [
        event(event_id=f"n{x}", tenant="acme", feature="new", model="dollar-1",
              input_tokens=2_000_000, cached_input_tokens=0, output_tokens=0,
              timestamp=(today + timedelta(days=x, hours=1)).isoformat())
        for x in (-3, -2, -1)
    ]})  # fmt: skip
    assert response.status_code == 202
    rollups_update()

    (feature,) = projection_compute(now=now).features

    assert feature.trend_per_day == 0  # $2 a day since it started, not a rise from $0
