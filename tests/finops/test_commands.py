from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from finops.models import ModelPrice, Tenant
from ingestion.models import UsageEvent
from statements.models import Statement
from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db


def test_createtenant_with_every_option() -> None:
    call_command(
        "createtenant",
        "initech",
        "--name",
        "Initech",
        "--tier",
        "free",
        "--monthly-cap",
        "250.50",
        "--ltv",
        "20",
        "--signup",
        "2026-10-01T00:00:00Z",
        stdout=StringIO(),
    )
    tenant = Tenant.objects.get(slug="initech")
    assert (tenant.name, tenant.tier) == ("Initech", "free")
    assert (tenant.monthly_cap, tenant.predicted_ltv) == (Decimal("250.50"), Decimal("20"))
    assert tenant.signup_at == datetime(2026, 10, 1, tzinfo=UTC)
    assert not tenant.auto_created


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Slug"], "slug"),
        (["ok", "--monthly-cap", "lots"], "--monthly-cap"),
        (["ok", "--ltv", "-3"], "--ltv"),
        (["ok", "--signup", "last tuesday"], "--signup"),
        (["ok", "--signup", "2024-02-30T00:00:00Z"], "--signup"),
    ],
)
def test_createtenant_refuses_bad_input(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("createtenant", *args, stdout=StringIO())
    assert not Tenant.objects.exists()


def test_createtenant_refuses_an_existing_slug(acme) -> None:
    with pytest.raises(CommandError, match="already exists"):
        call_command("createtenant", "acme")


def test_run_jobs_prices_events_whose_model_got_a_price(operator, acme) -> None:
    post_events(operator, event(model="late-model"))
    ModelPrice.objects.create(model="late-model", input_per_million=1, output_per_million=1)
    out = StringIO()
    call_command("run_jobs", "--now", "2026-11-22T12:00:00Z", stdout=out)
    assert "price-unpriced-events: priced 1 event(s)" in out.getvalue()
    stored = UsageEvent.objects.get()
    assert stored.cost == Decimal("0.0015")
    assert stored.priced_at == datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_run_jobs_walks_the_beat_schedule_in_order(settings) -> None:
    """The beat schedule is the one list of jobs: run_jobs runs each of its entries, in
    its order, and a new entry needs nothing else to be run by it."""
    settings.CELERY_BEAT_SCHEDULE = {
        "check-caps": {"task": "billing.tasks.caps_check_task", "schedule": 60.0},
        "price-unpriced-events": {
            "task": "ingestion.tasks.events_price_unpriced_task",
            "schedule": 300.0,
        },
    }
    out = StringIO()
    call_command("run_jobs", "--now", "2026-11-22T12:00:00Z", stdout=out)
    assert out.getvalue().splitlines() == [
        "check-caps: 0 new cap alert(s)",
        "price-unpriced-events: priced 0 event(s) for 0 in total; 0 still without a price",
    ]


def test_seed_demo_creates_a_living_system_and_is_safe_to_rerun(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    out = StringIO()
    # One instant for both runs: the demo's traffic runs up to `--now`.
    now = datetime.now(UTC).isoformat()
    call_command("seed_demo", "--days", "3", "--now", now, stdout=out)
    logins = json.loads((tmp_path / "local-credentials.json").read_text())["portal_users"]
    assert set(logins) == {"acme", "globex", "initech"}
    assert Client().login(username="acme-user", password=logins["acme"]["password"])
    assert Statement.objects.filter(tenant__slug="acme").exists()
    assert set(Tenant.objects.values_list("tier", flat=True)) == {"free", "pro", "enterprise"}
    count = UsageEvent.objects.count()
    assert count > 500
    assert UsageEvent.objects.filter(price__isnull=False).count() > count * 0.95
    assert UsageEvent.objects.values("model").distinct().count() >= 8
    call_command("seed_demo", "--days", "3", "--now", now, stdout=out)
    assert UsageEvent.objects.count() == count
    again = json.loads((tmp_path / "local-credentials.json").read_text())["portal_users"]
    assert again == logins


def test_run_jobs_refuses_an_impossible_date() -> None:
    with pytest.raises(CommandError, match="--now"):
        call_command("run_jobs", "--now", "2024-13-01T00:00:00Z")
