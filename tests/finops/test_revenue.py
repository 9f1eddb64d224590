"""The revenue side: tier plans (admin and management API), a tenant's monthly revenue,
and the predicted lifetime value derived from the plans, as the free-tier throttle (the
LTV alert and the guard) uses it.

The plans of most tests: Free at $0 for 24 months, 5% of whom upgrade to Pro at $49 for
24 months. A free tenant is worth 0 × 24 + 0.05 × 49 × 24 = $58.80.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from billing.caps import ltv_check
from billing.guard import policy_cache_clear
from billing.guard import redis as guard_redis
from billing.models import Alert
from finops.models import Tenant, TierPlan
from finops.revenue import Revenue, monthly_revenue, plan_ltv, predicted_ltv, tier_plans
from tests.conftest import event, post_events
from tests.factories import FeatureFactory, TenantFactory

pytestmark = pytest.mark.django_db

MODEL = "gpt-4o-2024-08-06"  # 1M uncached input tokens: $2.50 a call
FALLBACK = "gpt-4o-mini-2024-07-18"


def plan(tier: str, price: str, **fields) -> TierPlan:
    return TierPlan.objects.create(tier=tier, monthly_price=Decimal(price), **fields)


@pytest.fixture
def plans(db: None) -> dict[str, TierPlan]:
    plan("free", "0", lifetime_months=24, upgrade_rate=Decimal("0.05"), upgrades_to="pro")
    plan("pro", "49", lifetime_months=24)
    plan("enterprise", "2000", lifetime_months=36)
    return tier_plans()


@pytest.fixture
def manager(make_client) -> APIClient:
    return make_client(None, ["manage"])


# --- Revenue and lifetime value -------------------------------------------------------


def test_a_tenant_pays_its_own_revenue_else_its_plan_price(plans) -> None:
    pro = TenantFactory(slug="p", tier="pro")
    custom = TenantFactory(slug="c", tier="pro", monthly_revenue=Decimal("40.5"),
                           billing_currency="EUR")  # fmt: skip
    assert monthly_revenue(pro, plans) == Revenue(Decimal(49), "USD", "plan")
    assert monthly_revenue(custom, plans) == Revenue(Decimal("40.5"), "EUR", "tenant")
    TierPlan.objects.filter(tier="pro").delete()
    assert monthly_revenue(pro) is None  # no plan, none set: unknown, not zero


def test_a_free_tenant_is_worth_its_share_of_the_plan_it_upgrades_to(plans) -> None:
    free = TenantFactory(slug="f", tier="free")
    assert predicted_ltv(free, plans) == Decimal("58.80")  # 0.05 × 49 × 24
    # A pro tenant: 49 × 24; paying 30 a month instead: 30 × 24.
    assert predicted_ltv(TenantFactory(slug="p", tier="pro"), plans) == Decimal(1176)
    custom = TenantFactory(slug="c", tier="pro", monthly_revenue=Decimal(30))
    assert predicted_ltv(custom, plans) == Decimal(720)
    # Staff's own figure wins.
    free.predicted_ltv = Decimal(7)
    assert predicted_ltv(free, plans) == Decimal(7)


def test_an_upgrade_chain_is_followed_once_through_each_tier(plans) -> None:
    TierPlan.objects.filter(tier="pro").update(
        upgrade_rate=Decimal("0.1"), upgrades_to="enterprise"
    )
    TierPlan.objects.filter(tier="enterprise").update(
        upgrade_rate=Decimal("0.5"), upgrades_to="free"
    )
    # free: 0; + 0.05 × 49 × 24 = 58.80; + 0.05 × 0.1 × 2000 × 36 = 360; back to free: stop.
    assert plan_ltv("free", tier_plans()) == Decimal("418.80")


def test_no_lifetime_value_is_derived_across_currencies(plans) -> None:
    euro = TenantFactory(slug="e", tier="pro", monthly_revenue=Decimal(30),
                         billing_currency="EUR")  # fmt: skip
    assert predicted_ltv(euro, plans) is None
    TierPlan.objects.filter(tier="pro").update(currency="EUR")
    assert predicted_ltv(TenantFactory(slug="f", tier="free"), tier_plans()) is None
    assert predicted_ltv(TenantFactory(slug="x", tier="free"), {}) is None  # no plan at all


# --- The management API ---------------------------------------------------------------


def test_an_operator_creates_lists_changes_and_deletes_a_tier_plan(manager) -> None:
    created = manager.post("/api/v1/tier-plans", {"tier": "pro", "monthly_price": "49"},
                           format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    assert created.json() | {"updated_at": None} == {
        "tier": "pro", "monthly_price": "49", "currency": "USD", "lifetime_months": 24,
        "upgrade_rate": "0", "upgrades_to": None, "ltv": "1176", "updated_at": None,
    }  # fmt: skip
    free = manager.post("/api/v1/tier-plans", {
        "tier": "free", "monthly_price": "0", "upgrade_rate": "0.05", "upgrades_to": "pro",
    }, format="json")  # fmt: skip
    assert free.status_code == 201, free.json()
    assert free.json()["ltv"] == "58.8"

    listed = manager.get("/api/v1/tier-plans").json()
    assert [(p["tier"], p["ltv"]) for p in listed["results"]] == [("free", "58.8"),
                                                                  ("pro", "1176")]  # fmt: skip
    assert manager.get("/api/v1/tier-plans/free").json() == listed["results"][0]

    change = {"monthly_price": "59.5", "lifetime_months": 12}
    patched = manager.patch("/api/v1/tier-plans/pro", change, format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["monthly_price"], patched.json()["ltv"]) == ("59.5", "714")
    assert manager.get("/api/v1/tier-plans/free").json()["ltv"] == "35.7"  # 0.05 × 714

    assert manager.delete("/api/v1/tier-plans/pro").status_code == 204
    assert manager.get("/api/v1/tier-plans/pro").status_code == 404
    assert list(TierPlan.objects.values_list("tier", flat=True)) == ["free"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"tier": "free", "monthly_price": "0", "upgrade_rate": "1.5", "upgrades_to": "pro"},
         {"upgrade_rate"}),
        ({"tier": "free", "monthly_price": "0", "upgrade_rate": "-0.1"}, {"upgrade_rate"}),
        ({"tier": "free", "monthly_price": "0", "upgrades_to": "free"}, {"upgrades_to"}),
        ({"tier": "free", "monthly_price": "0", "upgrade_rate": "0.1"}, {"upgrades_to"}),
        ({"tier": "free", "monthly_price": "0", "currency": "usd"}, {"currency"}),
        ({"tier": "free", "monthly_price": "-1"}, {"monthly_price"}),
        ({"tier": "gold", "monthly_price": "1"}, {"tier"}),
        ({"tier": "free", "monthly_price": "0", "lifetime_months": -1}, {"lifetime_months"}),
        ({"tier": "free", "monthly_price": "0", "montly_price": "1"}, {"montly_price"}),
        ({"tier": "free", "monthly_price": "0", "ltv": "1"}, {"ltv"}),
        ({"tier": "free"}, {"monthly_price"}),
    ],
)  # fmt: skip
def test_a_plan_that_breaks_a_rule_is_refused_field_by_field(manager, body, errors) -> None:
    response = manager.post("/api/v1/tier-plans", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == errors
    assert not TierPlan.objects.exists()


def test_a_tier_has_one_plan_and_a_change_keeps_the_rules(manager, plans) -> None:
    again = manager.post("/api/v1/tier-plans", {"tier": "pro", "monthly_price": "1"},
                         format="json")  # fmt: skip
    assert (again.status_code, set(again.json())) == (400, {"tier"})
    for body, field in [({"upgrades_to": "free"}, "upgrades_to"),
                        ({"upgrade_rate": "2"}, "upgrade_rate"),
                        ({"upgrades_to": None}, "upgrades_to"),  # free keeps its 5%
                        ({"tier": "pro"}, "tier")]:  # fmt: skip
        response = manager.patch("/api/v1/tier-plans/free", body, format="json")
        assert (response.status_code, set(response.json())) == (400, {field}), body
    assert manager.patch("/api/v1/tier-plans/gold", {}, format="json").status_code == 404
    assert tier_plans()["free"].upgrades_to == "pro"


def test_tenant_keys_neither_see_nor_write_plans(make_client, acme, plans) -> None:
    tenant_key = make_client(acme, ["ingest", "read", "manage"])
    for method, url in [("get", "/api/v1/tier-plans"), ("get", "/api/v1/tier-plans/free"),
                        ("post", "/api/v1/tier-plans"), ("patch", "/api/v1/tier-plans/free"),
                        ("delete", "/api/v1/tier-plans/free")]:  # fmt: skip
        response = getattr(tenant_key, method)(url, {"monthly_price": "1"}, format="json")
        assert response.status_code == 403, (method, url)
        assert "monthly_price" not in response.content.decode()
        assert getattr(APIClient(), method)(url).status_code == 401
    assert tier_plans()["free"].monthly_price == 0 and len(tier_plans()) == 3


def test_an_operator_sets_and_reads_a_tenants_monthly_revenue(manager, make_client) -> None:
    body = {"slug": "initech", "tier": "pro", "monthly_revenue": "1234.5"}
    created = manager.post("/api/v1/tenants", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["monthly_revenue"] == "1234.5"
    patched = manager.patch("/api/v1/tenants/initech", {"monthly_revenue": "99.000001"},
                            format="json")  # fmt: skip
    assert patched.json()["monthly_revenue"] == "99.000001"
    assert Tenant.objects.get(slug="initech").monthly_revenue == Decimal("99.000001")
    bad = manager.patch("/api/v1/tenants/initech", {"monthly_revenue": "-1"}, format="json")
    assert (bad.status_code, set(bad.json())) == (400, {"monthly_revenue"})
    cleared = manager.patch("/api/v1/tenants/initech", {"monthly_revenue": None}, format="json")
    assert cleared.json()["monthly_revenue"] is None
    # The tenant's own key changes nothing of it, even with `manage`.
    own = make_client(Tenant.objects.get(slug="initech"), ["read", "manage"])
    response = own.patch("/api/v1/tenants/initech", {"monthly_revenue": "1"}, format="json")
    assert response.status_code == 403
    assert Tenant.objects.get(slug="initech").monthly_revenue is None


# --- The admin ------------------------------------------------------------------------


def test_staff_add_a_plan_in_the_admin_and_its_rules_read_as_field_errors(admin_client) -> None:
    url = "/admin/finops/tierplan/add/"
    form = {"tier": "free", "monthly_price": "0", "currency": "USD", "lifetime_months": "24",
            "upgrade_rate": "1.5", "upgrades_to": "free"}  # fmt: skip
    page = admin_client.post(url, form).content.decode()
    assert "A share from 0 to 1" in page and "A tier upgrades to another tier." in page
    assert not TierPlan.objects.exists()
    plan("pro", "49")
    response = admin_client.post(url, form | {"upgrade_rate": "0.05", "upgrades_to": "pro"})
    assert response.status_code == 302
    listing = admin_client.get("/admin/finops/tierplan/").content.decode()
    assert "58.80 USD" in listing and "49.00 USD" in listing


def test_the_tenant_admin_shows_monthly_revenue_in_the_tenants_currency(admin_client) -> None:
    TenantFactory(slug="yen", billing_currency="JPY", monthly_revenue=Decimal("150000.5"))
    assert "150,001 JPY" in admin_client.get("/admin/finops/tenant/").content.decode()
    tenant = TenantFactory(slug="t")
    page = admin_client.get(f"/admin/finops/tenant/{tenant.pk}/change/").content.decode()
    assert 'name="monthly_revenue"' in page


# --- The free-tier throttle on a derived lifetime value -------------------------------


@pytest.fixture
def fresh_guard(settings) -> Iterator[None]:
    settings.FINOPS_GUARD_POLICY_TTL = 0
    policy_cache_clear()
    guard_redis.mark_up()
    redis_db = guard_redis.client() if guard_redis.enabled() else None
    if redis_db:
        guard_redis.flush(redis_db)
    yield
    policy_cache_clear()
    if redis_db:
        guard_redis.flush(redis_db)


def spend(client, calls: int, *, tenant: str, prefix: str) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    events = [event(event_id=f"{prefix}-{i}", tenant=tenant, model=MODEL, input_tokens=1_000_000,
                    cached_input_tokens=0, output_tokens=0, timestamp=at.isoformat())
              for i in range(calls)]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202


def guard(client, tenant: str) -> dict:
    body = {"tenant": tenant, "model": MODEL, "feature": "document_summarization"}
    response = client.post("/api/v1/guard", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_free_tenant_over_its_derived_ltv_is_flagged_once(operator, plans) -> None:
    now = datetime.now(UTC)
    TenantFactory(slug="trial", tier="free", signup_at=now - timedelta(days=3))
    TenantFactory(slug="no-plan", tier="enterprise", signup_at=now - timedelta(days=3))
    spend(operator, 23, tenant="trial", prefix="a")  # $57.50, under $58.80
    assert ltv_check(now=now).alerts == 0
    spend(operator, 1, tenant="trial", prefix="b")  # $60.00
    assert ltv_check(now=now).alerts == 1
    assert ltv_check(now=now).alerts == 0
    alert = Alert.objects.get()
    assert (alert.kind, alert.tenant.slug, alert.value) == ("tenant_throttled", "trial", 60)
    assert "above its predicted lifetime value of 58.80 USD (derived from the tier plans)" in (
        alert.message)  # fmt: skip


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_free_tenant_without_a_plan_or_ltv_is_never_throttled(operator, fresh_guard) -> None:
    now = datetime.now(UTC)
    TenantFactory(slug="trial", tier="free", signup_at=now - timedelta(days=3))
    spend(operator, 4, tenant="trial", prefix="a")
    assert ltv_check(now=now).alerts == 0
    assert guard(operator, "trial")["decision"] == "allow"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_guard_downgrades_a_free_tenant_above_its_derived_ltv(
    operator, plans, fresh_guard
) -> None:
    TenantFactory(slug="freebie", tier="free", signup_at=datetime.now(UTC) - timedelta(days=2))
    FeatureFactory(key="document_summarization", fallback_model=FALLBACK)
    spend(operator, 23, tenant="freebie", prefix="a")  # $57.50
    assert guard(operator, "freebie")["decision"] == "allow"
    spend(operator, 1, tenant="freebie", prefix="b")  # $60.00
    assert guard(operator, "freebie") == {
        "decision": "downgrade",
        "model": FALLBACK,
        "reason": "freebie (free tier) cost 60.00 USD in its first 30 days, more than its "
        f"predicted lifetime value of 58.80 USD. Use {FALLBACK}.",
        "error_type": "ltv_throttled",
    }
    # A richer plan lifts the throttle: 0.05 × 60 × 24 = 72.
    TierPlan.objects.filter(tier="pro").update(monthly_price=Decimal(60))
    assert guard(operator, "freebie")["decision"] == "allow"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_guard_reads_the_plans_from_its_policy_cache(
    operator, plans, fresh_guard, settings
) -> None:
    settings.FINOPS_GUARD_POLICY_TTL = 60
    TenantFactory(slug="freebie", tier="free", signup_at=datetime.now(UTC) - timedelta(days=2))
    spend(operator, 24, tenant="freebie", prefix="a")  # $60.00
    assert guard(operator, "freebie")["error_type"] == "ltv_throttled"
    TierPlan.objects.filter(tier="pro").update(monthly_price=Decimal(60))
    with CaptureQueriesContext(connection) as queries:
        assert guard(operator, "freebie")["error_type"] == "ltv_throttled"  # as cached
    assert not [q for q in queries.captured_queries if "tierplan" in q["sql"]]
    policy_cache_clear()  # what the TTL's end does
    assert guard(operator, "freebie")["decision"] == "allow"
