"""What the portal shows a tenant user: its own tenant's figures only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing import hotstate
from billing.models import UsageRollup
from billing.periods import DAY, MONTH, period_end, period_start
from finops.fields import ExactSum
from finops.models import Tenant

CHART_DAYS = 30
PALETTE = ("#3b6ea5", "#e07b39", "#5aa469", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd")  # fmt: skip


def month_to_date(tenant: Tenant, now: datetime) -> Decimal:
    """Exact and current: the rollups plus what arrived since."""
    start = period_start(MONTH, now)
    scope = hotstate.calendar_scope(period=MONTH, start=start, end=period_end(MONTH, start),
                                    tenant_id=tenant.id)  # fmt: skip
    return hotstate.ledger_spend(scope)[0]


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    legend: list[tuple[str, str, Decimal]]
    max_cost: Decimal
    first_day: str
    last_day: str


def daily_cost_chart(tenant: Tenant, now: datetime, currency: str) -> Chart:
    """Daily cost by feature over the last 30 days, as stacked bars (from the rollups)."""
    last = period_start(DAY, now)
    first = last - timedelta(days=CHART_DAYS - 1)
    rows = (
        UsageRollup.objects.filter(grain=UsageRollup.Grain.DAY, tenant=tenant,
                                   period_start__gte=first, period_start__lte=last)
        .values_list("period_start", "feature")
        .annotate(cost=ExactSum("cost"))
    )  # fmt: skip
    cost: dict[tuple[datetime, str], Decimal] = {}
    totals: dict[str, Decimal] = {}
    for day, feature, amount in rows:
        name = feature or "(no feature)"
        cost[(day, name)] = cost.get((day, name), Decimal(0)) + amount
        totals[name] = totals.get(name, Decimal(0)) + amount
    features = sorted(totals, key=lambda f: -totals[f])
    colors = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(features)}
    days = [first + timedelta(days=i) for i in range(CHART_DAYS)]
    per_day = {d: sum((cost.get((d, f), Decimal(0)) for f in features), Decimal(0)) for d in days}
    top = max(per_day.values(), default=Decimal(0)) or Decimal(1)
    width, height, slot = 720, 220, 720 / CHART_DAYS
    bars = []
    for i, day in enumerate(days):
        y = float(height)
        for feature in features:
            amount = cost.get((day, feature), Decimal(0))
            if not amount:
                continue
            h = float(amount / top) * (height - 10)
            y -= h
            bars.append(Bar(i * slot + 2, y, slot - 4, h, colors[feature],
                            f"{day:%Y-%m-%d} {feature}: {amount:.2f} {currency}"))  # fmt: skip
    legend = [(f, colors[f], totals[f]) for f in features]
    return Chart(width, height, bars, legend, top, f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}")
