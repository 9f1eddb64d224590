from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from billing.alerts import alerts_deliver
from billing.budgets import budget_create, budgets_evaluate
from billing.models import Alert, AlertDelivery, Budget
from billing.rollups import rollups_update
from tests.conftest import event, post_events, run_at_once

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NOW = datetime.now(UTC)
HOUR = NOW.replace(minute=0, second=0, microsecond=0)


def spend(client, dollars: int, *, prefix: str, at: datetime, tenant: str = "acme", **fields):
    """Post calls of exactly $2.50 each (1M uncached input tokens of gpt-4o-2024-08-06)."""
    calls = int(Decimal(dollars) / Decimal("2.5"))
    events = [
        event(event_id=f"{prefix}-{i}", tenant=tenant, timestamp=at.isoformat(),
              input_tokens=1_000_000, cached_input_tokens=0, output_tokens=0, **fields)
        for i in range(calls)
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202
    rollups_update()


def test_each_threshold_alerts_once_per_period(operator, acme, webhook) -> None:
    budget = budget_create(tenant=acme, period="day", amount=Decimal("100"))
    spend(operator, 50, prefix="a", at=NOW - timedelta(minutes=1))
    assert budgets_evaluate(now=NOW).alerts == 1
    spend(operator, 35, prefix="b", at=NOW - timedelta(minutes=1))
    assert budgets_evaluate(now=NOW).alerts == 1
    assert budgets_evaluate(now=NOW).alerts == 0
    spend(operator, 20, prefix="c", at=NOW - timedelta(minutes=1))
    budgets_evaluate(now=NOW)

    alerts = list(Alert.objects.order_by("threshold"))
    assert [a.threshold for a in alerts] == [50, 80, 100]
    assert {a.kind for a in alerts} == {"budget_threshold"}
    assert alerts[-1].value == Decimal("105")
    assert "105.00 USD" in alerts[-1].message and "threshold 100% crossed" in alerts[-1].message
    assert {a.budget_id for a in alerts} == {budget.id}


def test_a_new_period_starts_from_zero_without_losing_the_old_one(operator, acme, webhook) -> None:
    budget_create(tenant=acme, period="hour", amount=Decimal("10"), thresholds=[100])
    spend(operator, 10, prefix="prev", at=HOUR - timedelta(minutes=30))
    spend(operator, 5, prefix="now", at=HOUR + timedelta(seconds=1))

    budgets_evaluate(now=max(NOW, HOUR + timedelta(seconds=2)))

    (alert,) = Alert.objects.all()
    assert alert.period_start == HOUR - timedelta(hours=1)
    assert alert.value == Decimal("10")


def test_scopes_count_only_their_own_spend(operator, acme, globex, webhook) -> None:
    chat = budget_create(feature=None, tenant=None, model="gpt-4o-2024-08-06",
                         period="day", amount=Decimal("20"), thresholds=[100])  # fmt: skip
    summarize = budget_create(tenant=globex, period="day", amount=Decimal("20"), thresholds=[100])
    spend(operator, 20, prefix="a", at=NOW - timedelta(minutes=1), tenant="acme")

    budgets_evaluate(now=NOW)

    assert list(Alert.objects.values_list("budget_id", flat=True)) == [chat.id]
    assert summarize.alerts.count() == 0


def test_each_alert_is_sent_once_by_webhook_and_email(operator, acme, webhook) -> None:
    budget_create(tenant=acme, period="day", amount=Decimal("10"), thresholds=[50, 100])
    spend(operator, 10, prefix="a", at=NOW - timedelta(minutes=1))
    budgets_evaluate(now=NOW)
    first = alerts_deliver()
    second = alerts_deliver()

    assert (first.sent, second.sent) == (4, 0)
    assert len(webhook.received) == 2
    assert {r["body"]["alert"]["threshold"] for r in webhook.received} == {50, 100}
    assert all(r["body"]["text"].startswith("Budget ") for r in webhook.received)
    assert {r["alert_id"] for r in webhook.received} == {
        str(i) for i in Alert.objects.values_list("id", flat=True)
    }
    assert len(mail.outbox) == 2
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_a_failing_webhook_is_retried_later_and_not_lost(operator, acme, webhook) -> None:
    budget_create(tenant=acme, period="day", amount=Decimal("10"), thresholds=[100])
    spend(operator, 10, prefix="a", at=NOW - timedelta(minutes=1))
    budgets_evaluate(now=NOW)
    webhook.status = 500

    alerts_deliver(now=NOW)
    failed = AlertDelivery.objects.get(channel="webhook")
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert "500" in failed.last_error
    webhook.status = 200
    assert alerts_deliver(now=NOW).sent == 0  # not due yet
    assert alerts_deliver(now=NOW + timedelta(hours=1)).sent == 1
    assert AlertDelivery.objects.get(channel="webhook").status == "sent"


def test_no_transaction_stays_open_while_a_webhook_is_slow(operator, acme, webhook) -> None:
    """Sending happens outside any transaction: ingestion is not blocked meanwhile."""
    import time

    budget_create(tenant=acme, period="day", amount=Decimal("10"), thresholds=[100])
    spend(operator, 10, prefix="a", at=NOW - timedelta(minutes=1))
    budgets_evaluate(now=NOW)
    observed: list[bool] = []

    from billing import alerts

    original = alerts._SENDERS["webhook"]

    def slow_webhook(alert) -> None:
        observed.append(connection.in_atomic_block)
        time.sleep(0.2)
        original(alert)

    alerts._SENDERS["webhook"] = slow_webhook
    try:
        assert alerts_deliver().sent == 2
    finally:
        alerts._SENDERS["webhook"] = original
    assert observed == [False]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_two_schedulers_at_once_raise_and_send_one_alert(operator, acme, webhook) -> None:
    budget_create(tenant=acme, period="day", amount=Decimal("10"), thresholds=[100])
    spend(operator, 10, prefix="a", at=NOW - timedelta(minutes=1))

    def scheduler(_: int) -> None:
        budgets_evaluate(now=NOW)
        alerts_deliver()

    run_at_once(4, scheduler)

    assert Alert.objects.count() == 1
    assert len(webhook.received) == 1
    assert len(mail.outbox) == 1


def test_budget_actions_are_recorded_in_the_message(operator, acme, webhook) -> None:
    budget_create(tenant=acme, period="month", amount=Decimal("5"), thresholds=[100],
                  action=Budget.Action.BLOCK)  # fmt: skip
    spend(operator, 5, prefix="a", at=NOW - timedelta(minutes=1))
    budgets_evaluate(now=NOW)
    assert "Its action at 100% is block." in Alert.objects.get().message
