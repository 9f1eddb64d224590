"""Month-end projection: the month's cost so far plus, for each remaining day, the linear
trend of each feature's daily cost; a planned feature that reuses a pipeline adds its
multiple of the reused feature's trend from its launch date on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing.selectors import feature_costs_by_day
from finops.models import Tenant
from finops.periods import DAY, MONTH, period_end, period_start

from .models import PlannedFeature

TREND_DAYS = 14
_MONEY = Decimal("0.01")


@dataclass(slots=True)
class Trend:
    """Least squares line through (day number, cost) points."""

    intercept: Decimal = Decimal(0)
    slope: Decimal = Decimal(0)

    def at(self, x: int) -> Decimal:
        return max(Decimal(0), self.intercept + self.slope * x)


def trend_fit(points: list[tuple[int, Decimal]]) -> Trend:
    """The line through the points; one point gives a flat line, none a zero one."""
    if not points:
        return Trend()
    n = Decimal(len(points))
    mean_x = sum(Decimal(x) for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((Decimal(x) - mean_x) ** 2 for x, _ in points)
    if not spread:
        return Trend(mean_y, Decimal(0))
    slope = sum((Decimal(x) - mean_x) * (y - mean_y) for x, y in points) / spread
    return Trend(mean_y - slope * mean_x, slope)


@dataclass(slots=True)
class FeatureProjection:
    feature: str
    actual: Decimal
    projected: Decimal
    trend_per_day: Decimal


@dataclass(slots=True)
class PlannedProjection:
    name: str
    reuses: str
    launch_date: date
    multiplier: Decimal
    projected: Decimal


@dataclass(slots=True)
class Projection:
    month: date
    as_of: datetime
    actual: Decimal = Decimal(0)
    projected: Decimal = Decimal(0)
    features: list[FeatureProjection] = field(default_factory=list)
    planned: list[PlannedProjection] = field(default_factory=list)
    # (day, actual or None, projected) for every day of the month, all features and plans.
    daily: list[tuple[date, Decimal | None, Decimal]] = field(default_factory=list)

    def as_json(self) -> dict:
        def money(value: Decimal) -> str:
            return str(value.quantize(_MONEY, rounding=ROUND_HALF_UP))

        return {
            "month": f"{self.month:%Y-%m}",
            "as_of": self.as_of.isoformat(),
            "actual_to_date": money(self.actual),
            "projected_month_end": money(self.projected),
            "features": [
                {"feature": f.feature or None, "actual_to_date": money(f.actual),
                 "projected_month_end": money(f.projected),
                 "trend_per_day": str(f.trend_per_day.quantize(Decimal("0.0001"),
                                                               rounding=ROUND_HALF_UP))}
                for f in self.features
            ],
            "planned": [
                {"name": p.name, "reuses": p.reuses, "launch_date": p.launch_date.isoformat(),
                 "multiplier": str(p.multiplier.quantize(_MONEY)),
                 "projected_month_end": money(p.projected)}
                for p in self.planned
            ],
            "daily": [
                {"date": d.isoformat(), "actual": None if a is None else money(a),
                 "projected": money(p)}
                for d, a, p in self.daily
            ],
        }  # fmt: skip


def feature_trends(*, costs: dict[str, dict[date, Decimal]], today: datetime) -> dict[str, Trend]:
    """Each feature's trend, fitted on its last 14 complete days before `today` from its
    first day with cost: the days before it existed are not days it cost nothing. Day
    numbers count from `today` (0)."""
    origin = today.date()
    recent = [(today - timedelta(days=i)).date() for i in range(TREND_DAYS, 0, -1)]
    trends = {}
    for feature, per_day in sorted(costs.items()):
        used = [d for d in recent if per_day.get(d)]
        points = [((d - origin).days, per_day.get(d, Decimal(0))) for d in recent
                  if used and d >= used[0]]  # fmt: skip
        trends[feature] = trend_fit(points)
    return trends


def projected_cost(*, start: datetime, end: datetime, tenant: Tenant | None = None) -> Decimal:
    """What the projection made at `start` (a UTC midnight) foresaw for the days from
    `start` to `end`, also past the end of `start`'s month: each feature's trend, plus
    (across tenants) the planned features from their launch."""
    costs = feature_costs_by_day(start=start - timedelta(days=TREND_DAYS), end=start,
                                 tenant=tenant)  # fmt: skip
    trends = feature_trends(costs=costs, today=start)
    days = range((end - start).days)  # day numbers from `start`
    total = sum((t.at(x) for t in trends.values() for x in days), Decimal(0))
    if tenant is None:
        for plan in PlannedFeature.objects.select_related("reuses"):
            trend = trends.get(plan.reuses.key, Trend())
            launch = (plan.launch_date - start.date()).days
            total += sum((plan.multiplier * trend.at(x) for x in days if x >= launch), Decimal(0))
    return total


def projection_compute(*, now: datetime, tenant: Tenant | None = None) -> Projection:
    """The month of `now`, projected to its end. The trend of each feature is fitted on its
    last 14 complete days (also the previous month's) from its first day with cost; today
    counts at least what it has cost so far."""
    month_start = period_start(MONTH, now)
    month_end = period_end(MONTH, month_start)
    today = period_start(DAY, now)
    fit_start = min(today - timedelta(days=TREND_DAYS), month_start)
    costs = feature_costs_by_day(start=fit_start, end=now, tenant=tenant)
    days = [(month_start + timedelta(days=i)).date() for i in range((month_end - month_start).days)]
    result = Projection(month=month_start.date(), as_of=now)
    origin = today.date()
    daily_actual: dict[date, Decimal] = defaultdict(Decimal)
    daily_projected: dict[date, Decimal] = defaultdict(Decimal)
    trends = feature_trends(costs=costs, today=today)

    for feature, per_day in sorted(costs.items()):
        trend = trends[feature]
        actual = projected = Decimal(0)
        for d in days:
            spent = per_day.get(d, Decimal(0))
            if d < origin:
                value = spent
                actual += spent
                daily_actual[d] += spent
            elif d == origin:
                value = max(spent, trend.at(0))
                actual += spent
                daily_actual[d] += spent
            else:
                value = trend.at((d - origin).days)
            projected += value
            daily_projected[d] += value
        result.features.append(FeatureProjection(feature, actual, projected, trend.slope))

    if tenant is None:
        for plan in PlannedFeature.objects.select_related("reuses").order_by("launch_date"):
            trend = trends.get(plan.reuses.key, Trend())
            added = Decimal(0)
            for d in days:
                if d >= max(plan.launch_date, origin):
                    value = plan.multiplier * trend.at((d - origin).days)
                    added += value
                    daily_projected[d] += value
            result.planned.append(PlannedProjection(plan.name, plan.reuses.key, plan.launch_date,
                                                    plan.multiplier, added))  # fmt: skip

    result.features.sort(key=lambda f: (-f.projected, f.feature))
    result.actual = sum((f.actual for f in result.features), Decimal(0))
    result.projected = sum((f.projected for f in result.features), Decimal(0)) + sum(
        (p.projected for p in result.planned), Decimal(0)
    )
    result.daily = [(d, daily_actual[d] if d <= origin else None, daily_projected[d]) for d in days]
    return result
