"""Unit economics on a hand-made ledger whose answers are worked out by hand.

The price: $1 per million input tokens (model unit-1), so an event of N million input
tokens costs $N. Every event is on 2025-04-10 (April has 30 days).

Plans: Free $0 (5% upgrade to Pro), Pro $49, Enterprise $500, all USD. Tenants (signed up
2025-01-01 unless said):

    ent    enterprise  chat $60 (u1, s1), chat $40 (u2, s2), search $60 (u1, s1)
    pro1   pro         chat $10 (u1, s1), no feature $2 (u9)
    pro2   pro         no usage
    pro3   pro         no usage, signed up 2025-04-16
    free1  free        chat $20 (f1, x1), chat $30 (f2), search $35 (f1, x1)
    free2  free        no usage, signed up 2025-04-16

ent's u1 and pro1's u1 are two users (and ent's s1 and pro1's s1 two sessions).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing.rollups import rollups_update
from console.economics import (
    CrossSubsidy,
    TierEconomics,
    cross_subsidies,
    feature_reach_count,
    feature_reach_report,
    period_revenue,
    reach_periods_due,
    unit_economics,
)
from console.models import FeatureReach
from console.tasks import feature_reach_task
from finops.models import Tenant, TierPlan
from ingestion.selectors import feature_reach_sums
from ingestion.services import events_ingest
from tests.conftest import event
from tests.factories import ModelPriceFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

APRIL = datetime(2025, 4, 1, tzinfo=UTC)
MAY = datetime(2025, 5, 1, tzinfo=UTC)
DAY = datetime(2025, 4, 10, 9, tzinfo=UTC)
INGESTED = datetime(2025, 4, 20, 12, tzinfo=UTC)
SIGNUP = datetime(2025, 1, 1, tzinfo=UTC)
M = 1_000_000


def _ingest(*events: dict) -> None:
    items = [json.dumps(e).encode() for e in events]
    results = events_ingest(key_tenant=None, items=items, now=INGESTED)
    assert [r.status for r in results] == ["accepted"] * len(items), results


def _call(event_id: str, tenant: str, feature: str | None, dollars: int, **fields) -> dict:
    return event(event_id=event_id, tenant=tenant, feature=feature, model="unit-1",
                 prompt_template=None, input_tokens=dollars * M, cached_input_tokens=0,
                 output_tokens=0, timestamp=DAY.isoformat(), **fields)  # fmt: skip


@pytest.fixture
def ledger(db: None) -> None:
    ModelPriceFactory(model="unit-1", input_per_million=1, output_per_million=0)
    TierPlan.objects.create(tier="free", monthly_price=0, upgrade_rate=Decimal("0.05"),
                            upgrades_to="pro")  # fmt: skip
    TierPlan.objects.create(tier="pro", monthly_price=49)
    TierPlan.objects.create(tier="enterprise", monthly_price=500)
    for slug, tier in [("ent", "enterprise"), ("pro1", "pro"), ("pro2", "pro"),
                       ("free1", "free")]:  # fmt: skip
        TenantFactory(slug=slug, tier=tier, signup_at=SIGNUP)
    mid_april = datetime(2025, 4, 16, tzinfo=UTC)
    TenantFactory(slug="pro3", tier="pro", signup_at=mid_april)
    TenantFactory(slug="free2", tier="free", signup_at=mid_april)
    _ingest(
        _call("e1", "ent", "chat", 60, user="u1", session="s1"),
        _call("e2", "ent", "chat", 40, user="u2", session="s2"),
        _call("e3", "ent", "search", 60, user="u1", session="s1"),
        _call("e4", "pro1", "chat", 10, user="u1", session="s1"),
        _call("e5", "pro1", None, 2, user="u9"),
        _call("e6", "free1", "chat", 20, user="f1", session="x1"),
        _call("e7", "free1", "chat", 30, user="f2"),
        _call("e8", "free1", "search", 35, user="f1", session="x1"),
    )
    rollups_update()


# --- Revenue over a window ------------------------------------------------------------


def test_revenue_is_pro_rata_by_the_time_of_each_month() -> None:
    jan, apr16, may11 = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 16, tzinfo=UTC),
                         datetime(2025, 5, 11, tzinfo=UTC))  # fmt: skip
    assert period_revenue(Decimal(500), jan, APRIL) == Decimal(1500)  # three whole months
    assert period_revenue(Decimal(500), apr16, MAY) == Decimal(250)  # 15 of April's 30 days
    # 15/30 of April and 10/31 of May: 250 + 161.29032258...
    assert period_revenue(Decimal(500), apr16, may11).quantize(Decimal("0.01")) == Decimal("411.29")
    assert period_revenue(Decimal(500), apr16, apr16) == 0


# --- Unit economics -------------------------------------------------------------------


def test_margin_per_tenant_tier_and_feature(ledger) -> None:
    report = unit_economics(APRIL, MAY).as_json()
    assert report["currency"] == "USD"
    tenants = {t["tenant"]: t for t in report["tenants"]}
    # ent: 500 - (60 + 40 + 60) = 340, 68% of its revenue.
    assert tenants["ent"] | {"note": None} == {
        "tenant": "ent", "tier": "enterprise", "cost": "160.00", "revenue": "500.00",
        "margin": "340.00", "note": None, "revenue_currency": "USD", "revenue_source": "plan",
        "margin_percent": "68.00",
    }  # fmt: skip
    # pro1: 49 - 12 = 37, 75.51%; pro3 pays 15 of 30 days: 24.50; free1 loses its cost.
    assert [(t["cost"], t["revenue"], t["margin"], t["margin_percent"])
            for t in (tenants[s] for s in ("pro1", "pro2", "pro3", "free1", "free2"))] == [
        ("12.00", "49.00", "37.00", "75.51"),
        ("0.00", "49.00", "49.00", "100.00"),
        ("0.00", "24.50", "24.50", "100.00"),
        ("85.00", "0.00", "-85.00", None),
        ("0.00", "0.00", "0.00", None),
    ]  # fmt: skip

    # Tiers: enterprise 340; pro 37 + 49 + 24.50 = 110.50 on 122.50; free -85.
    assert [(t["tier"], t["tenants"], t["cost"], t["revenue"], t["margin"], t["margin_percent"])
            for t in report["tiers"]] == [
        ("free", 2, "85.00", "0.00", "-85.00", None),
        ("pro", 3, "12.00", "122.50", "110.50", "90.20"),
        ("enterprise", 1, "160.00", "500.00", "340.00", "68.00"),
    ]  # fmt: skip

    # Features: each tenant's revenue split by its cost shares. ent: chat 100/160 of 500
    # = 312.50, search 60/160 = 187.50; pro1: chat 10/12 of 49 = 40.8333, none 2/12 =
    # 8.1667; free1 earns nothing. chat 353.3333 - 160; search 187.50 - 95; none 8.1667 - 2.
    assert [(f["feature"], f["cost"], f["revenue"], f["margin"]) for f in report["features"]] == [
        ("chat", "160.00", "353.33", "193.33"),
        ("search", "95.00", "187.50", "92.50"),
        (None, "2.00", "8.17", "6.17"),
    ]  # fmt: skip
    # pro2 and pro3 have no cost to split theirs over: 49 + 24.50.
    assert report["unallocated_revenue"] == "73.50"


def test_the_feature_split_adds_up_to_the_revenue_of_tenants_with_cost(ledger) -> None:
    report = unit_economics(APRIL, MAY)
    allocated = sum(f.revenue for f in report.features)
    assert allocated + report.unallocated_revenue == sum(t.revenue for t in report.tenants)
    assert sum(f.margin for f in report.features) + report.unallocated_revenue == sum(
        t.margin for t in report.tenants
    )


def test_enterprise_subsidises_free(ledger) -> None:
    subsidy = unit_economics(APRIL, MAY).as_json()["cross_subsidy"]
    # Enterprise 340 / Free's loss 85 = 4; Pro 110.50 / 85 = 1.3; overall 450.50 / 85 = 5.3.
    assert subsidy == {
        "ratio": "5.3000",
        "pairs": [
            {"payer": "enterprise", "receiver": "free", "ratio": "4.0000",
             "statement": "Enterprise subsidises Free 4:1"},
            {"payer": "pro", "receiver": "free", "ratio": "1.3000",
             "statement": "Pro subsidises Free 1.3:1"},
        ],
    }  # fmt: skip


def test_cross_subsidy_pairs_every_payer_with_every_loss() -> None:
    tiers = [TierEconomics("free", margin=Decimal(-30)), TierEconomics("pro", margin=Decimal(-10)),
             TierEconomics("enterprise", margin=Decimal(120)),
             TierEconomics("other", margin=None)]  # fmt: skip
    pairs, ratio = cross_subsidies(tiers)
    assert pairs == [CrossSubsidy("enterprise", "free", Decimal(4)),
                     CrossSubsidy("enterprise", "pro", Decimal(12))]  # fmt: skip
    assert ratio == Decimal(3)  # 120 / (30 + 10)
    assert cross_subsidies([TierEconomics("pro", margin=Decimal(5))]) == ([], None)


def test_no_margin_across_currencies_or_without_revenue(ledger) -> None:
    Tenant.objects.filter(slug="pro2").update(monthly_revenue=Decimal(45), billing_currency="EUR")
    Tenant.objects.filter(slug="ent").update(status=Tenant.Status.CLOSED)
    TierPlan.objects.filter(tier="free").delete()
    report = unit_economics(APRIL, MAY)
    tenants = {t.tenant: t for t in report.tenants}
    pro2 = tenants["pro2"]
    assert (pro2.revenue, pro2.currency, pro2.revenue_source, pro2.margin) == (
        Decimal(45), "EUR", "tenant", None)  # fmt: skip
    assert pro2.note == "Revenue in EUR, cost in USD: no margin without an exchange rate."
    assert (tenants["free1"].revenue, tenants["free1"].margin) == (None, None)
    assert "No revenue" in tenants["free1"].note
    # Closed: no revenue counted, its cost still counts.
    assert (tenants["ent"].revenue, tenants["ent"].margin) == (0, -160)
    tiers = {t.tier: t for t in report.tiers}
    assert (tiers["pro"].cost, tiers["pro"].margin) == (12, None)
    assert tiers["pro"].note == "No margin for 1 tenant(s): pro2."
    assert tiers["free"].margin is None and tiers["enterprise"].margin == -160
    features = {f.feature: f for f in report.features}
    assert features["search"].margin is None  # free1 (no revenue) uses it
    assert "1 tenant(s) without one" in features["search"].note
    # A closed tenant with no usage is not reported at all.
    Tenant.objects.filter(slug="pro2").update(status=Tenant.Status.CLOSED)
    assert "pro2" not in {t.tenant for t in unit_economics(APRIL, MAY).tenants}


def test_a_window_of_part_of_the_month_counts_what_falls_in_it(ledger) -> None:
    # Up to 2025-04-10 09:00: no event yet (they are at 09:00), revenue for 9.375 days.
    report = unit_economics(APRIL, DAY)
    ent = next(t for t in report.tenants if t.tenant == "ent")
    assert (ent.cost, ent.revenue) == (0, Decimal(500) * Decimal("9.375") / 30)
    assert "pro3" not in {t.tenant for t in report.tenants}  # signed up after the window


# --- Feature reach, cost per session --------------------------------------------------


def test_reach_counts_distinct_users_and_sessions_per_tenant(ledger) -> None:
    sums = {row["feature"]: row for row in feature_reach_sums(start=APRIL, end=MAY)}
    # Users: ent u1, u2; pro1 u1, u9; free1 f1, f2 (u1 twice: two tenants).
    # Sessions: ent s1, s2; pro1 s1; free1 x1. Session cost: all but e5 and e7.
    assert {k: (r["users"], r["sessions"], r["session_cost"]) for k, r in sums.items()} == {
        None: (6, 4, Decimal(225)),
        "chat": (5, 4, Decimal(130)),  # ent u1 u2, pro1 u1, free1 f1 f2; 60+40+10+20
        "search": (2, 2, Decimal(95)),  # ent u1, free1 f1; 60+35
    }
    assert [r for r in feature_reach_sums(start=MAY, end=MAY + timedelta(days=31))] == [
        {"feature": None, "users": 0, "sessions": 0, "session_cost": Decimal(0)}
    ]


def test_the_job_counts_the_current_and_previous_periods_until_counted(ledger) -> None:
    assert feature_reach_task(INGESTED.isoformat()) == (
        "counted feature reach for month 2025-03-01, month 2025-04-01, quarter 2025-01-01, "
        "quarter 2025-04-01: 8 row(s)"
    )  # March and Q1: only the row of all usage (no event); April and Q2: 3 rows each.
    rows = FeatureReach.objects.filter(period="quarter", period_start=date(2025, 4, 1))
    assert {(r.feature, r.users, r.sessions, r.session_cost) for r in rows} == {
        ("", 6, 4, Decimal(225)), ("chat", 5, 4, Decimal(130)), ("search", 2, 2, Decimal(95)),
    }  # fmt: skip
    # March and Q1 were counted after they ended: only the current periods again.
    again = feature_reach_count(now=INGESTED + timedelta(hours=1))
    assert again.periods == [("month", date(2025, 4, 1)), ("quarter", date(2025, 4, 1))]
    assert FeatureReach.objects.count() == 8
    # April ended uncounted: due until counted; counted on its first day, still due that
    # day (late events), then no more.
    assert [(p, s.date()) for p, s in reach_periods_due(MAY + timedelta(days=3))] == [
        ("month", date(2025, 4, 1)), ("month", date(2025, 5, 1)), ("quarter", date(2025, 4, 1)),
    ]  # fmt: skip
    feature_reach_count(now=MAY + timedelta(hours=1))
    assert [(p, s.date()) for p, s in reach_periods_due(MAY + timedelta(hours=23))] == [
        ("month", date(2025, 4, 1)), ("month", date(2025, 5, 1)), ("quarter", date(2025, 4, 1)),
    ]  # fmt: skip
    assert [(p, s.date()) for p, s in reach_periods_due(MAY + timedelta(days=1))] == [
        ("month", date(2025, 5, 1)), ("quarter", date(2025, 4, 1)),
    ]  # fmt: skip


def test_feature_reach_against_share_of_cost(ledger, settings) -> None:
    feature_reach_count(now=INGESTED)
    report = feature_reach_report(period="month", period_start=date(2025, 4, 1)).as_json()
    assert (report["users"], report["cost"], report["session_cost_review"]) == (6, "257.00", "0.10")
    assert report["counted_at"] == INGESTED.isoformat()
    # chat: 5 of 6 users (0.8333), 160 of 257 (0.6226); search: 2 of 6 (0.3333) but 95 of
    # 257 (0.3696): it costs more than its reach. Per session: 130 / 4 = 32.50, 95 / 2 = 47.50.
    assert [(f["feature"], f["users"], f["reach_share"], f["cost"], f["cost_share"],
             f["over_reach"], f["sessions"], f["cost_per_session"], f["review"])
            for f in report["features"]] == [
        ("chat", 5, "0.8333", "160.00", "0.6226", False, 4, "32.5000", True),
        ("search", 2, "0.3333", "95.00", "0.3696", True, 2, "47.5000", True),
    ]  # fmt: skip
    settings.FINOPS_SESSION_COST_REVIEW = Decimal(40)
    report = feature_reach_report(period="quarter", period_start=date(2025, 4, 1))
    assert [(f.feature, f.review) for f in report.features] == [("chat", False), ("search", True)]


def test_an_uncounted_period_reaches_no_one() -> None:
    report = feature_reach_report(period="month", period_start=date(2025, 4, 1))
    assert (report.counted_at, report.users, report.features) == (None, 0, [])
