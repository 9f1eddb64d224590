"""The weekly digest: figures from two weeks of hand-made usage, written once, sent once
to the webhook and by email, with one recommended action priced from the price rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.alerts import alerts_deliver
from billing.rollups import rollups_update
from console.digest import digest_write, digests_deliver, week_bounds
from console.models import Digest
from ingestion.models import Feature
from tests.conftest import event, post_events, run_at_once
from tests.factories import ModelPriceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
M = 1_000_000


@pytest.fixture
def weeks(operator, acme):
    """The week before last: chat $2, extract $1. Last week: chat $3, extract $1 on
    big-1, whose fallback small-1 costs a tenth."""
    ModelPriceFactory(model="big-1", input_per_million=1, output_per_million=2)
    ModelPriceFactory(model="small-1", input_per_million="0.1", output_per_million="0.2")
    now = timezone.now()
    start, _ = week_bounds(now)
    before = start - timedelta(days=7)

    def call(event_id, at, feature, dollars):
        at = (at + timedelta(hours=30)).isoformat()
        return event(event_id=event_id, tenant="acme", feature=feature, model="big-1",
                     input_tokens=dollars * M, cached_input_tokens=0, output_tokens=0,
                     prompt_template=None, timestamp=at)  # fmt: skip

    response = post_events(operator, {"events": [
        call("a1", before, "chat", 2), call("a2", before, "extract", 1),
        call("b1", start, "chat", 3), call("b2", start, "extract", 1),
    ]})  # fmt: skip
    assert response.status_code == 202, response.json()
    Feature.objects.filter(key="extract").update(task_type="extraction", fallback_model="small-1")
    rollups_update()
    return now, start


def test_the_digest_reads_like_the_weekly_review(weeks) -> None:
    now, start = weeks

    digest = digest_write(now=now)

    lines = digest.text.splitlines()
    assert lines[0] == f"Weekly FinOps review, week of {start:%Y-%m-%d}"
    assert lines[1] == "Total cost: 4.00 USD, +33.3% week over week (was 3.00 USD)."
    assert lines[2] == "Top feature: chat at 75% of cost (+8 points on the week before)."
    # The whole rise is chat's: one call each week, $2 then $3: all cost per call.
    assert lines[3] == (
        "Root cause: chat on big-1 for acme, +1.00 USD, 100.0% of the change (volume "
        "0.00 USD, cost per call 1.00 USD)."
    )
    assert re.fullmatch(r"Projected month-end \(\d{4}-\d\d\): [\d,]+\.\d\d USD\.", lines[4])
    assert "Metrics in warning:" in lines
    assert "- chat takes 75% of the cost" in lines
    # $1 a week on big-1 costs $0.10 on small-1: $0.90 a week, $3.86 over 30 days.
    assert lines[-2:] == [
        "Recommended actions, by measured saving:",
        "- Route extract's extraction calls from big-1 to its fallback model small-1: "
        "3.86 USD per month",
    ]
    assert digest.figures["total"] == "4.00"
    assert digest.figures["action"]["monthly_saving"] == "3.86"
    assert digest.figures["root_cause"]["share_percent"] == "100.0"
    assert digest.figures["projection_check"] is None  # no month kept a projection yet


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_two_schedulers_write_one_digest(weeks) -> None:
    now, _ = weeks

    written = run_at_once(3, lambda _: digest_write(now=now))

    assert len([d for d in written if d is not None]) == 1
    assert Digest.objects.count() == 1


def test_the_digest_is_written_once_and_sent_once(weeks, webhook) -> None:
    now, start = weeks

    assert digest_write(now=now) is not None
    assert digest_write(now=now + timedelta(hours=1)) is None
    assert Digest.objects.count() == 1
    assert digests_deliver(now=now).sent == 2
    assert digests_deliver(now=now).sent == 0
    (received,) = webhook.received
    assert received["body"]["text"].startswith("Weekly FinOps review")
    assert received["body"]["digest"]["week_start"] == f"{start:%Y-%m-%d}"
    assert received["digest_id"] == str(Digest.objects.get().id)
    (email,) = mail.outbox
    assert "Total cost: 4.00 USD" in email.body


def test_a_failed_webhook_is_retried_by_the_delivery_job(weeks, webhook) -> None:
    now, _ = weeks
    webhook.status = 500
    digest_write(now=now)
    digests_deliver(now=now)
    assert webhook.received and Digest.objects.get().deliveries.get(channel="webhook").status == (
        "pending")  # fmt: skip

    webhook.status = 200
    alerts_deliver(now=now)  # alerts alone do not send digests
    assert digests_deliver(now=now + timedelta(minutes=5)).sent == 1


def test_run_jobs_writes_the_digest(weeks, capsys) -> None:
    now, start = weeks
    call_command("run_jobs", "--now", now.isoformat())
    assert Digest.objects.get().week_start == start.date()
    assert "weekly-digest" in capsys.readouterr().out


def test_staff_read_digests_in_the_admin(weeks, admin_client) -> None:
    now, _ = weeks
    digest = digest_write(now=now)
    page = admin_client.get(f"/admin/console/digest/{digest.id}/change/")
    assert page.status_code == 200
    assert "Total cost: 4.00 USD" in page.content.decode()


def test_the_digest_checks_last_months_projection(weeks) -> None:
    from console.models import ProjectionSnapshot
    from finops.periods import MONTH, period_start

    now, _ = weeks
    last_month = (period_start(MONTH, now) - timedelta(days=1)).date().replace(day=1)
    ProjectionSnapshot.objects.create(month=last_month, made_on=last_month, projected=130,
                                      actual=100)  # fmt: skip

    digest = digest_write(now=now)

    # 130 projected against 100 spent: 30% over, outside the 20% tolerance.
    assert (
        f"Projection check: {last_month:%Y-%m} was projected at 130.00 USD on its first day, "
        "actual 100.00 USD (+30.0%, outside tolerance)."
    ) in digest.text.splitlines()
    assert digest.figures["projection_check"]["flagged"] is True
