"""Spend spikes: a tenant's hourly or daily cost far above its own 7-day average, on all
its usage and on each of its features, models and prompt templates; and the per-tenant
kill switches a feature's spike trips. One tenant's burst never alarms or downgrades
another tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q

from finops.fields import ExactSum, as_number
from finops.models import Tenant
from finops.money import money_format
from finops.periods import DAY, HOUR, period_start
from ingestion.models import Feature

from .alerts import alert_raise
from .killswitches import kill_switch_clear, kill_switch_trip
from .models import Alert, KillSwitch, UsageRollup


@dataclass(frozen=True, slots=True)
class Dimension:
    """What a spike is measured on besides the tenant: `column` of the rollups (None:
    all the tenant's usage), `name` in dedup keys, `label` in messages."""

    name: str
    column: str | None
    label: str


TENANT = Dimension("tenant", None, "")
FEATURE = Dimension("feature", "feature", "feature")
MODEL = Dimension("model", "model", "model")
PROMPT = Dimension("prompt", "prompt_template", "prompt template")
DIMENSIONS = (TENANT, FEATURE, MODEL, PROMPT)


@dataclass(frozen=True, slots=True)
class Grain:
    """A period checked against the `periods` periods before it (7 days)."""

    name: str
    step: timedelta
    periods: int
    adjective: str

    @property
    def factor(self) -> Decimal:
        if self.name == HOUR:
            return settings.FINOPS_SPIKE_HOURLY_FACTOR
        return settings.FINOPS_SPIKE_DAILY_FACTOR


HOURLY = Grain(HOUR, timedelta(hours=1), 7 * 24, "hourly")
DAILY = Grain(DAY, timedelta(days=1), 7, "daily")


@dataclass(frozen=True, slots=True)
class Spend:
    """A scope's cost in one period, and the sum of the `grain.periods` before it."""

    tenant_id: int
    dimension: Dimension
    value: str
    grain: Grain
    start: datetime
    cost: Decimal
    week_cost: Decimal

    @property
    def baseline(self) -> Decimal:
        """The average cost per period over the 7 days before."""
        return self.week_cost / self.grain.periods

    def above(self, factor: Decimal) -> bool:
        """More than `factor` times the baseline (exact: no division)."""
        return self.cost * self.grain.periods > self.week_cost * factor


@dataclass(slots=True)
class SpikeCheck:
    alerts: int = 0
    kill_switches_on: int = 0
    kill_switches_off: int = 0


def spend_by_scope(
    *, grain: Grain, dimension: Dimension, current: datetime, floor: Decimal | None, scope: Q
) -> list[Spend]:
    """Each (tenant, dimension value)'s cost in the period starting at `current` and in
    the one before, with the cost of the 7 days before each: one grouped statement,

        SELECT tenant_id, <column>,
               SUM(cost) FILTER (WHERE period_start = :previous)            previous_cost,
               SUM(cost) FILTER (WHERE period_start = :current)             current_cost,
               SUM(cost) FILTER (WHERE period_start < :previous)            previous_week,
               SUM(cost) FILTER (WHERE period_start >= :current - 7 days
                                   AND period_start < :current)             current_week
          FROM billing_usagerollup
         WHERE grain = :grain AND period_start >= :previous - 7 days
           AND period_start <= :current AND <column> <> '' AND <scope>
         GROUP BY tenant_id, <column>
        HAVING previous_cost >= :floor OR current_cost >= :floor

    (SUM is `decimal_sum` on SQLite.) Only scopes that reach `floor` in one of the two
    periods come back; the ratios are judged exactly in Python. SQLite compares the sums
    through floating point, which can let a cost a hair under the floor through, never
    keep one at or over it out; `Spend` compares exactly.
    """
    previous = current - grain.step
    week = grain.step * grain.periods
    columns = ["tenant_id"] + ([dimension.column] if dimension.column else [])
    rows = UsageRollup.objects.filter(
        scope, grain=grain.name, period_start__gte=previous - week, period_start__lte=current
    )
    if dimension.column:
        rows = rows.exclude(**{dimension.column: ""})
    rows = rows.values(*columns).annotate(
        previous_cost=ExactSum("cost", filter=Q(period_start=previous)),
        current_cost=ExactSum("cost", filter=Q(period_start=current)),
        previous_week=ExactSum("cost", filter=Q(period_start__lt=previous)),
        current_week=ExactSum(
            "cost", filter=Q(period_start__gte=current - week, period_start__lt=current)
        ),
    )
    if floor is not None:
        rows = rows.alias(
            previous_number=as_number("previous_cost"), current_number=as_number("current_cost")
        ).filter(Q(previous_number__gte=floor) | Q(current_number__gte=floor))
    found: list[Spend] = []
    for row in rows.order_by(*columns):
        for start, cost, week_cost in (
            (previous, row["previous_cost"], row["previous_week"]),
            (current, row["current_cost"], row["current_week"]),
        ):
            found.append(
                Spend(
                    tenant_id=row["tenant_id"],
                    dimension=dimension,
                    value=row[dimension.column] if dimension.column else "",
                    grain=grain,
                    start=start,
                    cost=cost or Decimal(0),
                    week_cost=week_cost or Decimal(0),
                )
            )
    return found


def _is_spike(spend: Spend, factor: Decimal) -> bool:
    """Over `factor` times a baseline there is, and not below the floor (tiny baselines
    would otherwise alarm on cents)."""
    return (
        spend.week_cost > 0 and spend.cost >= settings.FINOPS_SPIKE_MIN_COST and spend.above(factor)
    )


def _window(spend: Spend, now: datetime) -> str:
    current = period_start(spend.grain.name, now) == spend.start
    if spend.grain is HOURLY:
        return "this hour so far" if current else "the last hour"
    return "today so far" if current else "the last day"


def _subject(spend: Spend, tenant: Tenant) -> str:
    if spend.dimension is TENANT:
        return f"{tenant.slug} (all usage)"
    return f"{tenant.slug}, {spend.dimension.label} {spend.value}"


def _alert(spend: Spend, tenant: Tenant, now: datetime) -> Alert | None:
    currency = tenant.billing_currency
    ratio = (spend.cost / spend.baseline).quantize(Decimal("0.1"))
    message = (
        f"{_subject(spend, tenant)}: {money_format(spend.cost, currency)} in "
        f"{_window(spend, now)}, {ratio}x its 7-day {spend.grain.adjective} average "
        f"({money_format(spend.baseline, currency)})."
    )
    scope = spend.dimension.name + (f"={spend.value}" if spend.dimension.column else "")
    return alert_raise(
        kind=Alert.Kind.SPEND_SPIKE,
        dedup_key=f"spike:{spend.grain.name}:{tenant.id}:{scope}:{spend.start:%Y%m%dT%H}",
        message=message,
        now=now,
        tenant=tenant,
        feature=spend.value if spend.dimension is FEATURE else "",
        model=spend.value if spend.dimension is MODEL else "",
        prompt_template=spend.value if spend.dimension is PROMPT else "",
        period_start=spend.start,
        value=spend.cost,
    )


def _trip_reason(spend: Spend, tenant: Tenant) -> str:
    currency = tenant.billing_currency
    ratio = (spend.cost / spend.baseline).quantize(Decimal("0.1"))
    return (
        f"{money_format(spend.cost, currency)} in the hour from "
        f"{spend.start.astimezone(UTC):%Y-%m-%d %H:%M} UTC, {ratio}x its 7-day hourly "
        f"average of {money_format(spend.baseline, currency)} (the switch trips above "
        f"{settings.FINOPS_KILL_SWITCH_FACTOR}x)"
    )


def spikes_detect(*, now: datetime) -> SpikeCheck:
    """Check the current and the last complete hour and day of every tenant, on all its
    usage and on each feature, model and prompt template; trip the kill switch of a
    tenant's feature whose hour ran above FINOPS_KILL_SWITCH_FACTOR times its baseline
    (when the feature's switch is enabled), and clear those whose tenant and feature are
    back under it."""
    result = SpikeCheck()
    floor = settings.FINOPS_SPIKE_MIN_COST
    spikes: list[Spend] = []
    trips: list[Spend] = []
    for grain in (HOURLY, DAILY):
        current = period_start(grain.name, now)
        for dimension in DIMENSIONS:
            for spend in spend_by_scope(grain=grain, dimension=dimension, current=current,
                                        floor=floor, scope=Q()):  # fmt: skip
                if _is_spike(spend, grain.factor):
                    spikes.append(spend)
                if (
                    grain is HOURLY
                    and dimension is FEATURE
                    and _is_spike(spend, settings.FINOPS_KILL_SWITCH_FACTOR)
                ):
                    trips.append(spend)
    tenants = Tenant.objects.in_bulk({s.tenant_id for s in spikes + trips})
    for spend in spikes:
        if _alert(spend, tenants[spend.tenant_id], now):
            result.alerts += 1
    armed = {
        f.key: f
        for f in Feature.objects.filter(key__in={s.value for s in trips}, kill_switch_enabled=True)
    }
    for spend in trips:
        feature = armed.get(spend.value)
        if feature is None:
            continue
        tenant = tenants[spend.tenant_id]
        _, tripped = kill_switch_trip(feature=feature, tenant=tenant, now=now,
                                      reason=_trip_reason(spend, tenant))  # fmt: skip
        result.kill_switches_on += tripped
    result.kill_switches_off = _kill_switches_clear(now, {(s.tenant_id, s.value) for s in trips})
    return result


def _kill_switches_clear(now: datetime, spiking: set[tuple[int, str]]) -> int:
    """Clear the automatic switches of features whose kill switch is no longer enabled,
    and those whose tenant and feature spent no more than FINOPS_KILL_SWITCH_FACTOR
    times the baseline in the last complete hour, once a whole hour has passed since
    they tripped, unless this hour so far (`spiking`) runs above it again. Staff's
    switches are cleared by staff."""
    hour = period_start(HOUR, now)
    last_hour = hour - timedelta(hours=1)
    active = KillSwitch.objects.filter(
        automatic=True, cleared_at__isnull=True, tenant__isnull=False
    ).select_related("feature")
    disarmed = list(active.filter(feature__kill_switch_enabled=False))
    judged = list(active.filter(feature__kill_switch_enabled=True, tripped_at__lte=last_hour))
    over = set(spiking)
    if judged:
        scope = Q(tenant_id__in={s.tenant_id for s in judged},
                  feature__in={s.feature.key for s in judged})  # fmt: skip
        spends = spend_by_scope(grain=HOURLY, dimension=FEATURE, current=hour, floor=None,
                                scope=scope)  # fmt: skip
        factor = settings.FINOPS_KILL_SWITCH_FACTOR
        over |= {(s.tenant_id, s.value) for s in spends if s.start == last_hour and s.above(factor)}
    fallen = [s for s in judged if (s.tenant_id, s.feature.key) not in over]
    return sum(kill_switch_clear(switch=s, now=now) for s in disarmed + fallen)
