"""Month-end projection: the month's cost so far plus, for each remaining day, the linear
trend of each feature's daily cost; a planned feature that reuses a pipeline adds its
multiple of the reused feature's trend from its launch date on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from billing.selectors import feature_costs_by_day, total_cost
from finops.models import Tenant
from finops.periods import DAY, MONTH, period_end, period_start

from .models import PlannedFeature, ProjectionSnapshot

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


def _fitted(*, origin: datetime, tenant: Tenant | None) -> tuple[dict[str, Trend], list]:
    """The trends of a projection made at `origin` (a UTC midnight) and, across tenants,
    the planned features it adds."""
    costs = feature_costs_by_day(start=origin - timedelta(days=TREND_DAYS), end=origin,
                                 tenant=tenant)  # fmt: skip
    plans = list(PlannedFeature.objects.select_related("reuses")) if tenant is None else []
    return feature_trends(costs=costs, today=origin), plans


def _days_cost(
    trends: dict[str, Trend], plans: list[PlannedFeature], *, origin: datetime,
    start: datetime, end: datetime,
) -> Decimal:  # fmt: skip
    """What the projection made at `origin` foresaw for the days of [start, end)."""
    days = range((start - origin).days, (end - origin).days)  # day numbers from `origin`
    total = sum((t.at(x) for t in trends.values() for x in days), Decimal(0))
    for plan in plans:
        trend = trends.get(plan.reuses.key, Trend())
        launch = (plan.launch_date - origin.date()).days
        total += sum((plan.multiplier * trend.at(x) for x in days if x >= launch), Decimal(0))
    return total


def projected_cost(*, start: datetime, end: datetime, tenant: Tenant | None = None) -> Decimal:
    """What the projection made at `start` (a UTC midnight) foresaw for the days from
    `start` to `end`, also past the end of `start`'s month: each feature's trend, plus
    (across tenants) the planned features from their launch."""
    trends, plans = _fitted(origin=start, tenant=tenant)
    return _days_cost(trends, plans, origin=start, start=start, end=end)


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


# --- Six months ahead, kept and compared with what came -------------------------------

MONTHS_AHEAD = 6


@dataclass(slots=True)
class MonthProjection:
    """One month of `projection_months`: `actual` is the cost so far (this month only)."""

    month: date
    actual: Decimal
    projected: Decimal

    def as_json(self) -> dict[str, Any]:
        return {"month": f"{self.month:%Y-%m}", "actual_to_date": _money(self.actual),
                "projected": _money(self.projected)}  # fmt: skip


def _money(value: Decimal) -> str:
    return str(value.quantize(_MONEY, rounding=ROUND_HALF_UP))


def _next_month(start: datetime) -> datetime:
    return period_end(MONTH, start)


def projection_months(
    *, now: datetime, months: int = MONTHS_AHEAD, tenant: Tenant | None = None,
    current: Projection | None = None,
) -> list[MonthProjection]:  # fmt: skip
    """The month of `now` and the `months` - 1 after it: this month as `projection_compute`
    (its actual to date and the trend for the rest), each later month the same trends
    (fitted at today's midnight) over its whole days, with the planned features from
    their launch (across tenants only; a tenant's projection has none). `current`: this
    month's `projection_compute(now=now, tenant=tenant)` when the caller has it."""
    current = current or projection_compute(now=now, tenant=tenant)
    out = [MonthProjection(current.month, current.actual, current.projected)]
    today = period_start(DAY, now)
    trends, plans = _fitted(origin=today, tenant=tenant)
    start = period_start(MONTH, now)
    for _ in range(months - 1):
        start = _next_month(start)
        end = _next_month(start)
        projected = _days_cost(trends, plans, origin=today, start=start, end=end)
        out.append(MonthProjection(start.date(), Decimal(0), projected))
    return out


@dataclass(slots=True)
class SnapshotRun:
    made: int = 0
    actuals: int = 0


def _month_cost(month: date) -> Decimal:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return total_cost(start=start, end=_next_month(start))


@transaction.atomic
def projections_snapshot(*, now: datetime) -> SnapshotRun:
    """Keeps the projection made on the first day of `now`'s month (at its midnight: the
    trends of the 14 days before it) for that month and the five after it, once: a
    snapshot is never overwritten, and a run later in the month (a missed first day)
    makes the same one. Sets `actual`, the month's cost across tenants from the daily
    rollups, on the snapshots of ended months: once, and again while the month is in the
    backfill window (late events may still change its cost)."""
    first = period_start(MONTH, now)
    months = projection_months(now=first, months=MONTHS_AHEAD)
    made_on = first.date()
    existing = set(ProjectionSnapshot.objects.filter(made_on=made_on)
                   .values_list("month", flat=True))  # fmt: skip
    new = [ProjectionSnapshot(month=m.month, made_on=made_on, projected=m.projected)
           for m in months if m.month not in existing]  # fmt: skip
    ProjectionSnapshot.objects.bulk_create(new, ignore_conflicts=True)
    today = period_start(DAY, now)
    open_since = (today - timedelta(days=settings.FINOPS_BACKFILL_DAYS + 31)).date()
    ended = ProjectionSnapshot.objects.filter(month__lt=made_on).filter(
        Q(actual__isnull=True) | Q(month__gte=open_since)
    )
    run = SnapshotRun(made=len(new))
    costs: dict[date, Decimal] = {}
    for snapshot in ended.select_for_update():
        if snapshot.month not in costs:
            costs[snapshot.month] = _month_cost(snapshot.month)
        if snapshot.actual != costs[snapshot.month]:
            snapshot.actual = costs[snapshot.month]
            snapshot.save(update_fields=["actual"])
            run.actuals += 1
    return run


@dataclass(slots=True)
class SnapshotAccuracy:
    made_on: date
    months_ahead: int
    projected: Decimal
    error: Decimal | None  # (projected - actual) / actual; None when actual is 0
    flagged: bool


@dataclass(slots=True)
class MonthAccuracy:
    month: date
    actual: Decimal
    snapshots: list[SnapshotAccuracy] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "month": f"{self.month:%Y-%m}",
            "actual": _money(self.actual),
            "projections": [
                {"made_on": s.made_on.isoformat(), "months_ahead": s.months_ahead,
                 "projected": _money(s.projected),
                 "error": None if s.error is None else str(s.error.quantize(
                     Decimal("0.0001"), rounding=ROUND_HALF_UP)),
                 "flagged": s.flagged}
                for s in self.snapshots
            ],
        }  # fmt: skip


def _accuracy(snapshot: ProjectionSnapshot, tolerance: Decimal) -> SnapshotAccuracy:
    actual = snapshot.actual or Decimal(0)
    error = (snapshot.projected - actual) / actual if actual else None
    flagged = abs(error) > tolerance if error is not None else bool(snapshot.projected)
    return SnapshotAccuracy(snapshot.made_on, snapshot.months_ahead, snapshot.projected, error,
                            flagged)  # fmt: skip


def projection_accuracy(*, now: datetime, months: int = 12) -> list[MonthAccuracy]:
    """The last `months` ended months that have snapshots with their actual, newest first:
    each with the projections kept for it, made on its first day (months_ahead 0) and on
    the first days of the five months before (1 to 5), nearest first. error =
    (projected - actual) / actual; flagged when |error| > FINOPS_PROJECTION_TOLERANCE (and
    when a month without cost was projected to cost something)."""
    tolerance = settings.FINOPS_PROJECTION_TOLERANCE
    this_month = period_start(MONTH, now).date()
    snapshots = ProjectionSnapshot.objects.filter(month__lt=this_month, actual__isnull=False,
                                                  made_on__lte=F("month"))  # fmt: skip
    recent = list(snapshots.order_by("-month").values_list("month", flat=True).distinct()[:months])
    out: dict[date, MonthAccuracy] = {}
    for snapshot in snapshots.filter(month__in=recent).order_by("-month", "-made_on"):
        month = out.setdefault(snapshot.month, MonthAccuracy(snapshot.month, snapshot.actual))
        month.snapshots.append(_accuracy(snapshot, tolerance))
    return list(out.values())
