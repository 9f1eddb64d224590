"""Revenue and unit economics: gross margin per tenant, tier and feature, the
cross-subsidy between tiers, feature reach against share of cost, and cost per session.

The rules, as docs/economics.md states them:

- Cost is the ledger's (the rollups, in the price book's currency, USD). Revenue is
  contractual: each tenant's `monthly_revenue`, else its tier plan's price, in their own
  currency (`finops.revenue.monthly_revenue`). A margin exists only where both are in
  the same currency; else it is null, with a note (no exchange rates are kept).
- Revenue of a window: each calendar month it overlaps earns the monthly revenue times
  the share of the month's time it covers (pro rata by time, so by days for whole UTC
  days), counted from the tenant's signup. A closed tenant earns nothing (when it
  closed is not recorded). The tenant's current tier and plan apply to the whole window.
- A feature's revenue: each tenant's revenue is split over its features in proportion to
  their share of its cost in the window; a tenant without cost leaves its revenue
  unallocated.
- Cross-subsidy: every tier with a positive margin against every tier with a negative
  one, the ratio of the first's margin to the second's loss ("Enterprise subsidises Free
  4:1"); overall, the sum of the positive margins to the sum of the losses.
- Feature reach: distinct end users of a feature over distinct end users of all usage
  (counted by `feature_reach_count` into `FeatureReach`), against the feature's share of
  the cost; a feature whose share of cost exceeds its share of users is flagged. Cost per
  session is the cost of a feature's calls made in sessions over its sessions, put up
  for review above FINOPS_SESSION_COST_REVIEW.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing.selectors import tenant_feature_costs
from finops.models import Tenant, TierPlan
from finops.periods import MONTH, period_end, period_start
from finops.revenue import monthly_revenue, tier_plans
from ingestion.selectors import feature_reach_sums

from .models import FeatureReach

_CENT = Decimal("0.01")
_RATIO = Decimal("0.0001")
_TIER_ORDER = {tier: position for position, tier in enumerate(Tenant.Tier.values)}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _ratio(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(_RATIO, rounding=ROUND_HALF_UP))


def _share(part: Decimal, whole: Decimal) -> Decimal | None:
    return part / whole if whole else None


# --- Revenue over a window ------------------------------------------------------------


def period_revenue(monthly: Decimal, start: datetime, end: datetime) -> Decimal:
    """`monthly` earned over [start, end): each calendar month (UTC) it overlaps earns
    its share of the month's time. Exact for whole months and for half-open windows that
    cut months at simple fractions; otherwise to Decimal's 28 significant digits."""
    total = Decimal(0)
    month = period_start(MONTH, start)
    while month < end:
        following = period_end(MONTH, month)
        overlap = min(end, following) - max(start, month)
        if overlap >= following - month:
            total += monthly
        elif overlap > timedelta(0):
            total += (
                monthly
                * Decimal(overlap // timedelta(microseconds=1))
                / Decimal((following - month) // timedelta(microseconds=1))
            )
        month = following
    return total


# --- Unit economics -------------------------------------------------------------------


@dataclass(slots=True)
class TenantEconomics:
    tenant: str
    tier: str
    cost: Decimal
    revenue: Decimal | None  # in `currency`; None: no plan price and none set
    currency: str | None
    revenue_source: str | None  # "tenant", "plan" or None
    margin: Decimal | None  # revenue - cost, in the ledger's currency; None: see `note`
    note: str = ""

    @property
    def margin_percent(self) -> Decimal | None:
        return _margin_percent(self.margin, self.revenue)


def _margin_percent(margin: Decimal | None, revenue: Decimal | None) -> Decimal | None:
    if margin is None or not revenue:
        return None
    return margin * 100 / revenue


@dataclass(slots=True)
class TierEconomics:
    tier: str
    tenants: int = 0
    cost: Decimal = Decimal(0)
    revenue: Decimal | None = Decimal(0)  # None: a tenant's margin is unknown (`note`)
    margin: Decimal | None = Decimal(0)
    note: str = ""

    @property
    def label(self) -> str:
        return Tenant.Tier(self.tier).label if self.tier in Tenant.Tier.values else self.tier

    @property
    def margin_percent(self) -> Decimal | None:
        return _margin_percent(self.margin, self.revenue)


@dataclass(slots=True)
class FeatureEconomics:
    feature: str  # '' for usage without a feature
    cost: Decimal = Decimal(0)
    revenue: Decimal | None = Decimal(0)  # allocated by cost share within each tenant
    margin: Decimal | None = Decimal(0)
    note: str = ""


@dataclass(frozen=True, slots=True)
class CrossSubsidy:
    """A profitable tier (`payer`) against a loss-making one (`receiver`): `ratio` is the
    payer's margin over the receiver's loss (4: each dollar lost is covered four times)."""

    payer: str
    receiver: str
    ratio: Decimal

    @property
    def statement(self) -> str:
        ratio = self.ratio.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP).normalize()
        return f"{_label(self.payer)} subsidises {_label(self.receiver)} {ratio:f}:1"


def _label(tier: str) -> str:
    return Tenant.Tier(tier).label if tier in Tenant.Tier.values else tier


@dataclass(slots=True)
class UnitEconomics:
    start: datetime
    end: datetime
    currency: str  # the ledger's: every cost, and every margin
    tenants: list[TenantEconomics] = field(default_factory=list)
    tiers: list[TierEconomics] = field(default_factory=list)
    features: list[FeatureEconomics] = field(default_factory=list)
    subsidies: list[CrossSubsidy] = field(default_factory=list)
    # Sum of the positive tier margins over the sum of the losses; None: no loss.
    subsidy_ratio: Decimal | None = None
    unallocated_revenue: Decimal = Decimal(0)  # of tenants without cost: no feature's

    def as_json(self) -> dict:
        def economics(row: TenantEconomics | TierEconomics | FeatureEconomics) -> dict:
            return {"cost": _money(row.cost), "revenue": _money(row.revenue),
                    "margin": _money(row.margin), "note": row.note or None}  # fmt: skip

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "currency": self.currency,
            "tenants": [
                {"tenant": t.tenant, "tier": t.tier, **economics(t),
                 "revenue_currency": t.currency, "revenue_source": t.revenue_source,
                 "margin_percent": _money(t.margin_percent)}
                for t in self.tenants
            ],
            "tiers": [
                {"tier": t.tier, "tenants": t.tenants, **economics(t),
                 "margin_percent": _money(t.margin_percent)}
                for t in self.tiers
            ],
            "features": [{"feature": f.feature or None, **economics(f)} for f in self.features],
            "unallocated_revenue": _money(self.unallocated_revenue),
            "cross_subsidy": {
                "ratio": _ratio(self.subsidy_ratio),
                "pairs": [
                    {"payer": s.payer, "receiver": s.receiver, "ratio": _ratio(s.ratio),
                     "statement": s.statement}
                    for s in self.subsidies
                ],
            },
        }  # fmt: skip


def unit_economics(start: datetime, end: datetime) -> UnitEconomics:
    """Gross margin per tenant, tier and feature over [start, end) (hour boundaries),
    and the cross-subsidy between tiers. Exact amounts; `as_json` rounds to the cent."""
    currency = settings.FINOPS_DEFAULT_CURRENCY
    costs = tenant_feature_costs(start=start, end=end)
    tenant_costs: dict[int, Decimal] = defaultdict(Decimal)
    for (tenant_id, _feature), cost in costs.items():
        tenant_costs[tenant_id] += cost
    earning = ~Q(status=Tenant.Status.CLOSED) & Q(signup_at__lt=end)
    tenants = Tenant.objects.filter(Q(id__in=list(tenant_costs)) | earning).order_by("slug")
    plans = tier_plans()
    result = UnitEconomics(start=start, end=end, currency=currency)
    by_id = {}
    for tenant in tenants:
        row = _tenant_economics(tenant, tenant_costs.get(tenant.id, Decimal(0)), plans, start,
                                end, currency)  # fmt: skip
        by_id[tenant.id] = row
        result.tenants.append(row)
    result.tiers = _tiers(result.tenants)
    result.features, result.unallocated_revenue = _features(costs, tenant_costs, by_id)
    result.subsidies, result.subsidy_ratio = cross_subsidies(result.tiers)
    return result


def _tenant_economics(
    tenant: Tenant,
    cost: Decimal,
    plans: dict[str, TierPlan],
    start: datetime,
    end: datetime,
    currency: str,
) -> TenantEconomics:
    row = TenantEconomics(tenant=tenant.slug, tier=tenant.tier, cost=cost, revenue=None,
                          currency=None, revenue_source=None, margin=None)  # fmt: skip
    monthly = monthly_revenue(tenant, plans)
    if monthly is None:
        row.note = "No revenue: set the tier's plan or the tenant's monthly revenue."
        return row
    row.currency, row.revenue_source = monthly.currency, monthly.source
    if tenant.status == Tenant.Status.CLOSED:
        row.revenue = Decimal(0)
        row.note = "Closed: no revenue counted (when it closed is not recorded)."
    else:
        row.revenue = period_revenue(monthly.amount, max(start, tenant.signup_at), end)
    if monthly.currency != currency:
        row.note = (f"Revenue in {monthly.currency}, cost in {currency}: no margin without "
                    "an exchange rate.")  # fmt: skip
        return row
    row.margin = row.revenue - cost
    return row


def _tiers(tenants: Iterable[TenantEconomics]) -> list[TierEconomics]:
    tiers: dict[str, TierEconomics] = {}
    unknown: dict[str, list[str]] = defaultdict(list)
    for row in tenants:
        tier = tiers.setdefault(row.tier, TierEconomics(row.tier))
        tier.tenants += 1
        tier.cost += row.cost
        if row.margin is None or row.revenue is None:
            unknown[row.tier].append(row.tenant)
        elif tier.margin is not None and tier.revenue is not None:
            tier.revenue += row.revenue
            tier.margin += row.margin
    for name, slugs in unknown.items():
        tiers[name].revenue = tiers[name].margin = None
        tiers[name].note = f"No margin for {len(slugs)} tenant(s): {', '.join(slugs[:5])}."
    return sorted(tiers.values(), key=lambda t: (_TIER_ORDER.get(t.tier, 99), t.tier))


def _features(
    costs: dict[tuple[int, str], Decimal],
    tenant_costs: dict[int, Decimal],
    tenants: dict[int, TenantEconomics],
) -> tuple[list[FeatureEconomics], Decimal]:
    features: dict[str, FeatureEconomics] = {}
    unknown: dict[str, int] = defaultdict(int)
    for (tenant_id, key), cost in sorted(costs.items()):
        row = features.setdefault(key, FeatureEconomics(key))
        row.cost += cost
        tenant = tenants[tenant_id]
        if tenant.margin is None or tenant.revenue is None:
            unknown[key] += 1
        elif tenant_costs[tenant_id] > 0 and row.revenue is not None:
            row.revenue += tenant.revenue * cost / tenant_costs[tenant_id]
    for row in features.values():
        if unknown[row.feature]:
            row.revenue = row.margin = None
            row.note = f"No margin: {unknown[row.feature]} tenant(s) without one use it."
        else:
            row.margin = row.revenue - row.cost  # type: ignore[operator]
    unallocated = sum(
        (t.revenue for tid, t in tenants.items()
         if t.margin is not None and t.revenue and tenant_costs.get(tid, 0) <= 0),
        Decimal(0),
    )  # fmt: skip
    return sorted(features.values(), key=lambda f: (-f.cost, f.feature)), unallocated


def cross_subsidies(tiers: Iterable[TierEconomics]) -> tuple[list[CrossSubsidy], Decimal | None]:
    """Each profitable tier against each loss-making one (largest margin and largest loss
    first), and the overall ratio of surplus to deficit (None without a loss). Tiers
    without a known margin take no part."""
    known = [t for t in tiers if t.margin is not None]
    payers = sorted((t for t in known if t.margin > 0), key=lambda t: -t.margin)  # type: ignore[operator]
    receivers = sorted((t for t in known if t.margin < 0), key=lambda t: t.margin)  # type: ignore[operator,arg-type]
    pairs = [
        CrossSubsidy(payer.tier, receiver.tier, payer.margin / -receiver.margin)  # type: ignore[operator]
        for payer in payers
        for receiver in receivers
    ]
    deficit = -sum((t.margin for t in receivers), Decimal(0))  # type: ignore[misc]
    surplus = sum((t.margin for t in payers), Decimal(0))  # type: ignore[misc]
    return pairs, (surplus / deficit if deficit else None)


# --- Feature reach and cost per session -----------------------------------------------

MONTH_PERIOD = FeatureReach.Period.MONTH
QUARTER_PERIOD = FeatureReach.Period.QUARTER


def reach_period_start(period: str, at: datetime) -> datetime:
    """The start (UTC) of the month or quarter holding `at`."""
    month = period_start(MONTH, at)
    if period == QUARTER_PERIOD:
        return month.replace(month=(month.month - 1) // 3 * 3 + 1)
    return month


def reach_period_end(period: str, start: datetime) -> datetime:
    end = period_end(MONTH, start)
    if period == QUARTER_PERIOD:
        end = period_end(MONTH, period_end(MONTH, end))
    return end


def _as_instant(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(slots=True)
class ReachCount:
    periods: list[tuple[str, date]] = field(default_factory=list)
    rows: int = 0


def reach_periods_due(now: datetime) -> list[tuple[str, datetime]]:
    """The current month and quarter; each previous one on the first day of the next (for
    late events), and after that until it has been counted once after it ended."""
    due = []
    for period in (MONTH_PERIOD, QUARTER_PERIOD):
        current = reach_period_start(period, now)
        previous = reach_period_start(period, current - timedelta(days=1))
        counted_after = FeatureReach.objects.filter(
            period=period, period_start=previous.date(), counted_at__gte=current
        ).exists()
        if now < current + timedelta(days=1) or not counted_after:
            due.append((period, previous))
        due.append((period, current))
    return due


def feature_reach_count(*, now: datetime) -> ReachCount:
    """Count distinct end users, sessions and session cost per feature (and over all
    usage, feature '') into `FeatureReach` for each period due; one grouped statement per
    period, its rows replaced in one transaction."""
    result = ReachCount()
    for period, start in reach_periods_due(now):
        sums = feature_reach_sums(start=start, end=reach_period_end(period, start))
        rows = [
            FeatureReach(period=period, period_start=start.date(), feature=row["feature"] or "",
                         users=row["users"], sessions=row["sessions"],
                         session_cost=row["session_cost"], counted_at=now)
            for row in sums
        ]  # fmt: skip
        with transaction.atomic():
            FeatureReach.objects.filter(period=period, period_start=start.date()).delete()
            FeatureReach.objects.bulk_create(rows)
        result.periods.append((period, start.date()))
        result.rows += len(rows)
    return result


@dataclass(slots=True)
class FeatureReachRow:
    feature: str
    users: int
    reach_share: Decimal | None  # of the period's distinct end users
    cost: Decimal
    cost_share: Decimal | None  # of the period's cost
    sessions: int
    session_cost: Decimal
    cost_per_session: Decimal | None
    over_reach: bool  # its share of cost exceeds its share of users
    review: bool  # its cost per session is above the review threshold


@dataclass(slots=True)
class FeatureReachReport:
    period: str
    period_start: date
    counted_at: datetime | None  # None: not counted yet
    users: int
    cost: Decimal
    session_cost_review: Decimal
    features: list[FeatureReachRow] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "period": self.period,
            "period_start": self.period_start.isoformat(),
            "counted_at": self.counted_at.isoformat() if self.counted_at else None,
            "users": self.users,
            "cost": _money(self.cost),
            "session_cost_review": _money(self.session_cost_review),
            "features": [
                {"feature": f.feature or None, "users": f.users,
                 "reach_share": _ratio(f.reach_share), "cost": _money(f.cost),
                 "cost_share": _ratio(f.cost_share), "over_reach": f.over_reach,
                 "sessions": f.sessions, "cost_per_session": _ratio(f.cost_per_session),
                 "review": f.review}
                for f in self.features
            ],
        }  # fmt: skip


def feature_reach_report(*, period: str, period_start: date) -> FeatureReachReport:
    """Each feature's reach (from `FeatureReach`, as last counted) against its share of
    the period's cost (from the rollups), and its cost per session. Features with cost
    but no events with a user in the period reach no one; usage without a feature counts
    in the totals only."""
    start = _as_instant(period_start)
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for (_tenant_id, key), cost in tenant_feature_costs(
        start=start, end=reach_period_end(period, start)
    ).items():
        costs[key] += cost
    counted = FeatureReach.objects.filter(period=period, period_start=period_start)
    reach = {row.feature: row for row in counted}
    overall = reach.get("")
    threshold = settings.FINOPS_SESSION_COST_REVIEW
    report = FeatureReachReport(
        period=period, period_start=period_start,
        counted_at=overall.counted_at if overall else None,
        users=overall.users if overall else 0, cost=sum(costs.values(), Decimal(0)),
        session_cost_review=threshold,
    )  # fmt: skip
    for key in sorted((set(costs) | set(reach)) - {""}):
        row = reach.get(key)
        users, sessions = (row.users, row.sessions) if row else (0, 0)
        session_cost = row.session_cost if row else Decimal(0)
        reach_share = _share(Decimal(users), Decimal(report.users))
        cost_share = _share(costs.get(key, Decimal(0)), report.cost)
        per_session = session_cost / sessions if sessions else None
        report.features.append(FeatureReachRow(
            feature=key, users=users, reach_share=reach_share, cost=costs.get(key, Decimal(0)),
            cost_share=cost_share, sessions=sessions, session_cost=session_cost,
            cost_per_session=per_session,
            over_reach=cost_share is not None and cost_share > (reach_share or 0),
            review=per_session is not None and per_session > threshold,
        ))  # fmt: skip
    report.features.sort(key=lambda f: (-f.cost, f.feature))
    return report
