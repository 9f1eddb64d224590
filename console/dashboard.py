"""The FinOps dashboard of the admin console: what staff read at a glance, from the rollups.

Daily cost by feature, cost by tenant tier, the routing mix, every predictive metric
against its threshold and the month-end projection. A window of the last N days (today
included, UTC) for all but the projection, which is the month's. A few grouped queries
on the rollups whatever the number of events: two here, the metrics' and the
projection's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings

from billing.selectors import SLICE_FIELDS, daily_feature_costs, slice_sums, tenant_tier_sums
from finops.charts import (
    OTHER,
    BarChart,
    Chart,
    colors_for,
    daily_stacked_chart,
    horizontal_bars,
    stacked_columns,
    top_series,
)
from finops.models import Tenant
from finops.money import money_format
from finops.periods import DAY, HOUR, period_start

from .metrics import HEALTHY, NO_DATA, WARNING, Metric, Window, metrics_compute
from .projection import Projection, projection_compute

DAY_CHOICES = (7, 30, 90)
DEFAULT_DAYS = 30
STATUS_COLORS = {HEALTHY: "#3f8f4f", WARNING: "#d9822b", NO_DATA: "#9aa3ad"}
ACTUAL, PROJECTED = "spent", "projected to come"
# Routing tier and model pairs drawn apart; the rest share one grey segment.
TOP_ROUTES = 7

GAUGE_WIDTH = 260


@dataclass(frozen=True, slots=True)
class TierCost:
    tier: str
    label: str
    calls: int
    cost: Decimal
    share: Decimal | None

    @property
    def share_text(self) -> str:
        return _percent(self.share)


@dataclass(frozen=True, slots=True)
class RoutingRow:
    name: str  # routing tier · model
    color: str
    calls: int
    call_share: str
    cost: Decimal
    cost_share: str


@dataclass(frozen=True, slots=True)
class Gauge:
    """A metric drawn as a bar against its threshold (a marker)."""

    metric: Metric
    value_text: str
    threshold_text: str
    status_text: str
    note: str  # what the metric says beyond its value (the feature or task type behind it)
    color: str
    bar_width: float
    marker_x: float | None


@dataclass(slots=True)
class Dashboard:
    days: int
    first_day: date
    last_day: date
    currency: str
    total: Decimal
    daily: Chart
    tiers: list[TierCost]
    tier_chart: BarChart
    routing: Gauge
    routing_chart: BarChart | None
    routing_rows: list[RoutingRow]
    gauges: list[Gauge]
    projection: Projection
    projection_chart: Chart
    slice_by: str = "region"
    slices: list[SliceCost] = field(default_factory=list)
    slice_chart: BarChart | None = None
    day_choices: tuple[int, ...] = field(default=DAY_CHOICES)
    slice_choices: tuple[str, ...] = field(default=SLICE_FIELDS)


@dataclass(frozen=True, slots=True)
class SliceCost:
    value: str  # '' for usage that does not say
    calls: int
    cost: Decimal
    share: Decimal | None

    @property
    def label(self) -> str:
        return self.value or "(not set)"

    @property
    def share_text(self) -> str:
        return _percent(self.share)


def dashboard_slice(raw: str | None) -> str:
    """The slice asked for (`?by=provider`), if it is one; region otherwise."""
    return raw if raw in SLICE_FIELDS else "region"


def _slices(first: datetime, last: datetime, by: str, currency: str) -> tuple[list, BarChart]:
    """Cost by the values of one slice, the largest first, and its bars."""
    sums = slice_sums(first=first, last=last, field=by)
    total = sum((cost for _, cost in sums.values()), Decimal(0))
    rows = sorted(
        (SliceCost(value, calls, cost, cost / total if total else None)
         for value, (calls, cost) in sums.items()),
        key=lambda r: (-r.cost, r.value),
    )  # fmt: skip
    colors = colors_for([r.label for r in rows])
    chart = horizontal_bars(
        rows=[(r.label, [(r.label, r.cost, f"{r.label}: {money_format(r.cost, currency)}, "
                                           f"{r.calls} calls")],
               f"{money_format(r.cost, currency)} ({r.share_text})") for r in rows],
        colors=colors, label_width=160,
    )  # fmt: skip
    return rows, chart


def dashboard_days(raw: str | None) -> int:
    """The window asked for, if it is one of the choices; the default otherwise."""
    try:
        days = int(raw or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return days if days in DAY_CHOICES else DEFAULT_DAYS


def _percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def tier_costs(*, first: datetime, last: datetime) -> list[TierCost]:
    """Calls and cost per tenant tier (the tenants' tier when they made the calls) over the
    days, every tier listed."""
    sums = tenant_tier_sums(first=first, last=last)
    total = sum((cost for _, cost in sums.values()), Decimal(0))
    tiers = []
    for tier, label in Tenant.Tier.choices:
        calls, cost = sums.get(tier, (0, Decimal(0)))
        tiers.append(TierCost(tier, label, calls, cost, cost / total if total else None))
    return tiers


def _tier_chart(tiers: list[TierCost], currency: str) -> BarChart:
    colors = colors_for([t.label for t in tiers])
    rows = [
        (t.label,
         [(t.label, t.cost, f"{t.label}: {money_format(t.cost, currency)}, {t.calls} calls")],
         f"{money_format(t.cost, currency)} ({_percent(t.share)})")
        for t in tiers
    ]  # fmt: skip
    return horizontal_bars(rows=rows, colors=colors, label_width=120)


def _routing(routing: Metric) -> tuple[BarChart | None, list[RoutingRow]]:
    """The routing mix as two bars of 100%: the calls and the cost, split by routing
    tier and model (the largest pairs apart, the rest as OTHER); and the table rows."""
    mix = routing.breakdown or []
    if not mix:
        return None, []
    names = [f"{item['routing_tier']} · {item['model']}" for item in mix]
    weight = {name: (item["call_share"] or 0) + (item["cost_share"] or 0)
              for name, item in zip(names, mix, strict=True)}  # fmt: skip
    kept, bucket = top_series(weight, TOP_ROUTES)
    # In the breakdown's order (by routing tier), so the cheap tiers stand together.
    series = [name for name in names if name in kept] + [n for n in kept if n == OTHER]
    colors = colors_for(series)
    table = [
        RoutingRow(name, colors[bucket[name]], item["calls"], _percent(item["call_share"]),
                   item["cost"], _percent(item["cost_share"]))
        for name, item in zip(names, mix, strict=True)
    ]  # fmt: skip
    rows = []
    for label, key in (("Calls", "call_share"), ("Cost", "cost_share")):
        shares = dict.fromkeys(series, Decimal(0))
        for name, item in zip(names, mix, strict=True):
            shares[bucket[name]] += item[key] or Decimal(0)
        segments = [(name, share, f"{name}: {_percent(share)} of {label.lower()}")
                    for name, share in shares.items()]  # fmt: skip
        rows.append((label, segments, ""))
    return horizontal_bars(rows=rows, colors=colors, scale=Decimal(1), label_width=80), table


def _number(metric: Metric, value: Decimal | None) -> str:
    if value is None:
        return "no data"
    if metric.unit == "ratio":
        return _percent(value)
    return f"{value:.4f}"


def _gauge(metric: Metric) -> Gauge:
    """The bar runs from 0 to the larger of value and threshold with room to spare (to
    100% for ratios up to 1)."""
    value, threshold = metric.value, metric.threshold
    known = [v for v in (value, threshold, metric.previous) if v is not None]
    top = max(known, default=Decimal(0))
    if metric.unit == "ratio" and top <= 1:
        top = Decimal(1)
    else:
        top = top * Decimal("1.25") or Decimal(1)

    def x(v: Decimal) -> float:
        return round(float(v / top) * GAUGE_WIDTH, 2)

    threshold_text = (
        "-" if threshold is None else f"{metric.warn_when} {_number(metric, threshold)}"
    )
    return Gauge(
        metric=metric,
        value_text=_number(metric, value),
        threshold_text=threshold_text,
        status_text=metric.status.replace("_", " "),
        # The metrics' own one-line message repeats the label unless it names more.
        note="" if metric.message.startswith(metric.label) else metric.message,
        color=STATUS_COLORS.get(metric.status, STATUS_COLORS[NO_DATA]),
        bar_width=0.0 if value is None else x(value),
        marker_x=None if threshold is None else x(threshold),
    )


def _projection_chart(projection: Projection, currency: str) -> Chart:
    """The month's days: what was spent, and on top what the trend (and the planned
    features) add until the month ends."""
    columns = [(f"{d:%d}", f"{d:%Y-%m-%d}") for d, _, _ in projection.daily]
    amounts: dict[tuple[int, str], Decimal] = {}
    for i, (_, actual, projected) in enumerate(projection.daily):
        spent = actual or Decimal(0)
        amounts[(i, ACTUAL)] = spent
        amounts[(i, PROJECTED)] = max(Decimal(0), projected - spent)
    colors = {ACTUAL: "#3b6ea5", PROJECTED: "#a9c4e2"}
    return stacked_columns(columns=columns, amounts=amounts, series=[ACTUAL, PROJECTED],
                           colors=colors, unit=currency)  # fmt: skip


def dashboard_get(*, now: datetime, days: int = DEFAULT_DAYS, by: str = "region") -> Dashboard:
    currency = settings.FINOPS_DEFAULT_CURRENCY
    last = period_start(DAY, now)
    first = last - timedelta(days=days - 1)
    day_list = [(first + timedelta(days=i)).date() for i in range(days)]
    amounts = daily_feature_costs(first=first, last=last)
    tiers = tier_costs(first=first, last=last)
    # The metrics' window ends with the hour in progress, so it covers what the charts do.
    metrics = metrics_compute(Window(first, period_start(HOUR, now) + timedelta(hours=1)))
    gauges = [_gauge(m) for m in metrics]
    routing = next(g for g in gauges if g.metric.name == "routing_cheap_share")
    routing_chart, routing_rows = _routing(routing.metric)
    projection = projection_compute(now=now)
    slices, slice_chart = _slices(first, last, by, currency)
    return Dashboard(
        days=days,
        first_day=first.date(),
        last_day=last.date(),
        currency=currency,
        total=sum(amounts.values(), Decimal(0)),
        daily=daily_stacked_chart(days=day_list, amounts=amounts, unit=currency),
        tiers=tiers,
        tier_chart=_tier_chart(tiers, currency),
        routing=routing,
        routing_chart=routing_chart,
        routing_rows=routing_rows,
        gauges=gauges,
        projection=projection,
        projection_chart=_projection_chart(projection, currency),
        slice_by=by,
        slices=slices,
        slice_chart=slice_chart,
    )
