"""The daily alarm job on hand-made weeks of usage: a metric in warning alarms once per
metric, scope and week and is resolved once when healthy again; a week more than 20
percent over its projection alarms once. Prices: a dollar per million input tokens."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.alerts import alerts_deliver
from billing.models import Alert, AlertDelivery, AlertRoute
from billing.rollups import rollups_update
from console.alarms import metric_alarms_check, projection_overruns_check
from console.digest import week_bounds
from console.projection import projected_cost, projection_compute
from console.tasks import alarms_check_task
from finops.periods import MONTH, period_end, period_start
from tests.conftest import event, post_events, run_at_once
from tests.factories import ModelPriceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
M = 1_000_000
NOW = timezone.now()
LAST_WEEK, THIS_WEEK = week_bounds(NOW)
WEEK_BEFORE = LAST_WEEK - timedelta(days=7)


def call(event_id: str, tenant: str, at, *, dollars: Decimal | int = 1, used: int | None = None,
         feature: str = "chat") -> dict:  # fmt: skip
    """One call of `dollars`; with `used`, a retrieval of 10 chunks of which `used` fed
    the answer."""
    fields = (
        {"retrieval": {"chunks_retrieved": 10, "chunks_used": used}} if used is not None else {}
    )
    return event(event_id=event_id, tenant=tenant, feature=feature, model="dollar-1",
                 input_tokens=int(Decimal(dollars) * M), cached_input_tokens=0,
                 output_tokens=0, prompt_template=None, timestamp=at.isoformat(),
                 **fields)  # fmt: skip


def post(operator, events: list[dict]) -> None:
    response = post_events(operator, {"events": events})
    assert response.status_code == 202, response.json()
    rollups_update()


@pytest.fixture
def priced(db) -> None:
    ModelPriceFactory(model="dollar-1", input_per_million=1, output_per_million=0)


@pytest.fixture
def retrieval(operator, acme, globex, priced) -> None:
    """Last week: acme's retrievals use 1 chunk in 10 (hit rate 0.1), globex's 9 in 10;
    across tenants 0.5, below the 0.55 threshold. Two features of equal cost, so the
    cost concentration stays healthy."""
    at = LAST_WEEK + timedelta(days=2, hours=12)
    post(operator, [
        call("a1", "acme", at, used=1), call("g1", "globex", at, used=9, feature="search"),
    ])  # fmt: skip


def _metric_alerts() -> list[tuple[str | None, str]]:
    alerts = Alert.objects.filter(kind="metric_warning").select_related("tenant")
    return sorted((a.tenant.slug if a.tenant else "", a.dedup_key.split(":")[1])
                  for a in alerts)  # fmt: skip


def test_a_metric_in_warning_alarms_once_per_metric_scope_and_week(retrieval, acme) -> None:
    first = metric_alarms_check(now=NOW)
    again = metric_alarms_check(now=NOW + timedelta(days=1))  # the next daily run, same week

    assert (first.raised, again.raised) == (2, 0)
    assert _metric_alerts() == [("", "retrieval_hit_rate"), ("acme", "retrieval_hit_rate")]
    alert = Alert.objects.get(tenant=acme)
    assert (alert.severity, alert.period_start, alert.value) == (
        "warning", LAST_WEEK, Decimal("0.1"))  # fmt: skip
    assert alert.message == (
        f"Tenant acme, week of {LAST_WEEK:%Y-%m-%d}: Retrieval hit rate (chunks used / "
        "retrieved): 10% (warning below 55%).")  # fmt: skip
    assert alert.dedup_key == f"metric:retrieval_hit_rate:{acme.id}:{LAST_WEEK:%Y%m%d}"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_two_runs_at_once_raise_each_metric_alarm_once(retrieval) -> None:
    run_at_once(4, lambda _: metric_alarms_check(now=NOW))
    assert len(_metric_alerts()) == 2


def test_a_healthy_week_resolves_the_alarm_and_sends_one_resolved_notice(
    operator, acme, priced, webhook
) -> None:
    post(operator, [
        call("bad", "acme", WEEK_BEFORE + timedelta(days=1), used=1),
        call("bad-2", "acme", WEEK_BEFORE + timedelta(days=1), feature="search"),
        call("good", "acme", LAST_WEEK + timedelta(days=1), used=9),
        call("good-2", "acme", LAST_WEEK + timedelta(days=1), feature="search"),
    ])  # fmt: skip
    assert metric_alarms_check(now=NOW - timedelta(days=7)).raised == 2  # acme and all
    alerts_deliver()

    first = metric_alarms_check(now=NOW)
    again = metric_alarms_check(now=NOW + timedelta(days=1))
    assert (first.raised, first.resolved, again.resolved) == (0, 2, 0)
    assert alerts_deliver().sent == 4  # two resolved notices, by webhook and e-mail
    assert alerts_deliver().sent == 0

    assert set(Alert.objects.values_list("resolved_at", flat=True)) == {NOW}
    notices = [r["body"] for r in webhook.received]
    assert [n["event"] for n in notices] == ["alert.triggered"] * 2 + ["alert.resolved"] * 2
    assert all(n["text"].startswith("Resolved: ") for n in notices[2:])
    assert len(mail.outbox) == 4
    assert AlertDelivery.objects.filter(notice="resolved").count() == 4


def test_a_week_without_data_leaves_the_alarm_open(operator, acme, priced) -> None:
    post(operator, [call("bad", "acme", WEEK_BEFORE + timedelta(days=1), used=1)])
    metric_alarms_check(now=NOW - timedelta(days=7))
    assert metric_alarms_check(now=NOW).resolved == 0
    assert not Alert.objects.filter(resolved_at__isnull=False).exists()


def test_a_tenant_webhook_gets_only_its_tenants_metric_alarms(retrieval, globex, hooks_url,
                                                              settings) -> None:  # fmt: skip
    server, url = hooks_url
    AlertRoute.objects.create(tenant=globex, channel="webhook", target=url)
    metric_alarms_check(now=NOW)
    alerts_deliver()
    # globex's own metrics are healthy: its webhook hears of neither acme's nor the
    # platform's alarm.
    assert server.received == []


@pytest.fixture
def hooks_url(webhook, settings):
    """The test receiver as a tenant's route; the staff default webhook turned off."""
    settings.FINOPS_ALERT_WEBHOOK_URL = ""
    return webhook, f"http://127.0.0.1:{webhook.server_port}/tenant"


# --- Projection overrun --------------------------------------------------------------


@pytest.fixture
def history(operator, acme, globex, priced) -> None:
    """$1 a day each for the 14 days before last week (a flat projection of $7 a week
    each), then last week acme $10 and globex $8: acme 43% over, globex 14%, together
    $18 against $14, 29% over."""
    events = []
    for day in range(1, 15):
        at = LAST_WEEK - timedelta(days=day) + timedelta(hours=12)
        events += [call(f"a-{day}", "acme", at), call(f"g-{day}", "globex", at)]
    at = LAST_WEEK + timedelta(days=3, hours=12)
    events += [call("a-week", "acme", at, dollars=10), call("g-week", "globex", at, dollars=8)]
    post(operator, events)


def test_a_week_over_its_projection_alarms_once_per_scope(history, acme) -> None:
    assert projected_cost(start=LAST_WEEK, end=THIS_WEEK, tenant=acme) == Decimal(7)

    first = projection_overruns_check(now=NOW)
    again = projection_overruns_check(now=NOW + timedelta(days=1))

    assert (first.overruns, again.overruns) == (2, 0)
    alerts = {a.tenant.slug if a.tenant else None: a
              for a in Alert.objects.filter(kind="projection_overrun")}  # fmt: skip
    assert set(alerts) == {"acme", None}
    mine = alerts["acme"]
    assert (mine.value, mine.threshold, mine.period_start, mine.severity) == (
        Decimal(10), 120, LAST_WEEK, "warning")  # fmt: skip
    assert mine.message == (f"Tenant acme: the week of {LAST_WEEK:%Y-%m-%d} cost 10.00 USD, "
                            "43% above the 7.00 USD projected at its start.")  # fmt: skip
    assert alerts[None].value == Decimal(18)


def test_no_history_means_no_projection_to_overrun(operator, acme, priced) -> None:
    post(operator, [call("new", "acme", LAST_WEEK + timedelta(days=1), dollars=50)])
    assert projection_overruns_check(now=NOW).overruns == 0


def test_the_week_projection_is_what_the_month_projection_said_for_those_days(history) -> None:
    """Within one month the two agree; `projected_cost` also runs past the month end."""
    month_end = period_end(MONTH, period_start(MONTH, LAST_WEEK))
    end = min(THIS_WEEK, month_end)
    month = projection_compute(now=LAST_WEEK)
    said = sum((p for d, _, p in month.daily if LAST_WEEK.date() <= d < end.date()), Decimal(0))
    assert projected_cost(start=LAST_WEEK, end=end) == said == Decimal(2 * (end - LAST_WEEK).days)


def test_the_job_runs_from_the_schedule(history, retrieval, webhook) -> None:
    line = alarms_check_task(now=NOW.isoformat())
    # Retrieval for acme and all, chat's 95% of the cost for all; every scope is over.
    assert line == ("checked last week's metrics for 3 scope(s): 3 new metric alert(s), "
                    "0 resolved; 3 projection overrun(s)")  # fmt: skip

    from io import StringIO

    out = StringIO()
    call_command("run_jobs", "--now", NOW.isoformat(), stdout=out)
    assert "check-metric-alarms: checked last week's metrics for 3 scope(s): 0 new" in (
        out.getvalue())  # fmt: skip
    assert Alert.objects.count() == 6
