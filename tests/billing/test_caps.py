from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.caps import caps_check, ltv_check
from billing.models import Alert, FeatureCap
from billing.rollups import rollups_update
from finops.models import Tenant
from tests.conftest import event, post_events
from tests.factories import FeatureFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NOW = datetime.now(UTC)


def spend(client, dollars: str, *, tenant: str, prefix: str, at: datetime = NOW, **fields):
    """Calls of $2.50 each (1M uncached input tokens of gpt-4o-2024-08-06)."""
    calls = int(Decimal(dollars) / Decimal("2.5"))
    events = [
        event(event_id=f"{prefix}-{i}", tenant=tenant, input_tokens=1_000_000,
              cached_input_tokens=0, output_tokens=0,
              timestamp=(at - timedelta(minutes=1)).isoformat(), **fields)
        for i in range(calls)
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202
    rollups_update()


def test_reaching_the_monthly_cap_raises_one_alert(operator) -> None:
    TenantFactory(slug="capped", monthly_cap=Decimal("10"))
    spend(operator, "7.5", tenant="capped", prefix="a")
    assert caps_check(now=NOW).alerts == 0
    spend(operator, "2.5", tenant="capped", prefix="b")
    assert caps_check(now=NOW).alerts == 1
    assert caps_check(now=NOW).alerts == 0
    alert = Alert.objects.get()
    assert (alert.kind, alert.tenant.slug, alert.value) == ("cap_reached", "capped", Decimal(10))
    assert "reached the contractual cap of 10.00 USD" in alert.message


def test_an_admin_override_lifts_the_cap(operator) -> None:
    TenantFactory(slug="capped", monthly_cap=Decimal("5"),
                  cap_override_until=NOW + timedelta(days=1))  # fmt: skip
    spend(operator, "10", tenant="capped", prefix="a")
    assert caps_check(now=NOW).alerts == 0


def test_a_feature_cap_counts_only_that_feature(operator) -> None:
    tenant = TenantFactory(slug="capped")
    FeatureCap.objects.create(tenant=tenant, feature=FeatureFactory(key="chat_assistant"),
                              monthly_cap=Decimal("5"))  # fmt: skip
    spend(operator, "10", tenant="capped", prefix="a", feature="document_summarization")
    assert caps_check(now=NOW).alerts == 0
    spend(operator, "5", tenant="capped", prefix="b", feature="chat_assistant")
    assert caps_check(now=NOW).alerts == 1
    assert Alert.objects.get().feature == "chat_assistant"


def test_a_free_tenant_over_its_ltv_in_its_first_30_days_is_flagged_once(operator) -> None:
    TenantFactory(slug="trial", tier=Tenant.Tier.FREE, predicted_ltv=Decimal("5"),
                  signup_at=NOW - timedelta(days=3))  # fmt: skip
    TenantFactory(slug="paying", tier=Tenant.Tier.PRO, predicted_ltv=Decimal("5"),
                  signup_at=NOW - timedelta(days=3))  # fmt: skip
    spend(operator, "5", tenant="trial", prefix="a")
    spend(operator, "50", tenant="paying", prefix="p")
    assert ltv_check(now=NOW).alerts == 0  # equal is not above
    spend(operator, "2.5", tenant="trial", prefix="b")
    assert ltv_check(now=NOW).alerts == 1
    assert ltv_check(now=NOW).alerts == 0
    alert = Alert.objects.get()
    assert (alert.kind, alert.tenant.slug, alert.value) == (
        "tenant_throttled",
        "trial",
        Decimal("7.5"),
    )


def test_cost_after_the_first_30_days_does_not_count_toward_the_ltv(operator) -> None:
    TenantFactory(slug="old-trial", tier=Tenant.Tier.FREE, predicted_ltv=Decimal("5"),
                  signup_at=NOW - timedelta(days=31))  # fmt: skip
    spend(operator, "2.5", tenant="old-trial", prefix="in", at=NOW - timedelta(days=30, hours=12))
    spend(operator, "50", tenant="old-trial", prefix="after")
    assert ltv_check(now=NOW).alerts == 0
