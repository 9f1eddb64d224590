"""Spend spikes: a feature's hourly or daily cost far above its 7-day average."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q

from finops.fields import ExactSum
from finops.money import money_format
from finops.periods import DAY, HOUR, period_start
from ingestion.models import Feature

from .alerts import alert_raise
from .models import Alert, FeatureRollup

WEEK_HOURS = 7 * 24


@dataclass(slots=True)
class SpikeCheck:
    alerts: int = 0
    kill_switches_on: int = 0
    kill_switches_off: int = 0


def _costs(grain: str, start: datetime, end: datetime) -> dict[tuple[str, datetime], Decimal]:
    rows = (
        FeatureRollup.objects.filter(grain=grain, period_start__gte=start, period_start__lt=end)
        .exclude(feature="")
        .values_list("feature", "period_start")
        .annotate(cost=ExactSum("cost"))
    )
    return {(feature, start): cost for feature, start, cost in rows}


def _baseline(costs: dict, feature: str, start: datetime, step: timedelta) -> Decimal:
    """The average cost per period over the 7 days before `start`."""
    periods = 7 * 24 if step == timedelta(hours=1) else 7
    total = sum(
        (costs.get((feature, start - step * i), Decimal(0)) for i in range(1, periods + 1)),
        Decimal(0),
    )
    return total / periods


def spikes_detect(*, now: datetime) -> SpikeCheck:
    """Check the current and the last complete hour and day of every feature."""
    result = SpikeCheck()
    hour = period_start(HOUR, now)
    day = period_start(DAY, now)
    hourly = _costs(
        FeatureRollup.Grain.HOUR, hour - timedelta(hours=WEEK_HOURS + 1), hour + timedelta(hours=1)
    )
    daily = _costs(FeatureRollup.Grain.DAY, day - timedelta(days=8), day + timedelta(days=1))
    min_cost = settings.FINOPS_SPIKE_MIN_COST
    rates: dict[str, tuple[Decimal, Decimal]] = {}
    checks = [
        (hourly, HOUR, timedelta(hours=1), settings.FINOPS_SPIKE_HOURLY_FACTOR, s)
        for s in (hour - timedelta(hours=1), hour)
    ] + [
        (daily, DAY, timedelta(days=1), settings.FINOPS_SPIKE_DAILY_FACTOR, s)
        for s in (day - timedelta(days=1), day)
    ]
    features = {f for f, _ in hourly} | {f for f, _ in daily}
    for feature in sorted(features):
        for costs, grain, step, factor, start in checks:
            cost = costs.get((feature, start), Decimal(0))
            baseline = _baseline(costs, feature, start, step)
            if grain == HOUR and start == hour - timedelta(hours=1):
                rates[feature] = (cost, baseline)
            if baseline <= 0 or cost < min_cost or cost <= baseline * factor:
                continue
            ratio = (cost / baseline).quantize(Decimal("0.1"))
            if grain == HOUR:
                window = "this hour so far" if start == hour else "the last hour"
            else:
                window = "today so far" if start == day else "the last day"
            message = (
                f"{feature}: {money_format(cost, 'USD')} in {window}, {ratio}x its 7-day "
                f"{'hourly' if grain == HOUR else 'daily'} average "
                f"({money_format(baseline, 'USD')})."
            )
            if alert_raise(
                kind=Alert.Kind.SPEND_SPIKE,
                dedup_key=f"spike:{grain}:{feature}:{start:%Y%m%dT%H}",
                message=message,
                now=now,
                feature=feature,
                period_start=start,
                value=cost,
            ):
                result.alerts += 1
            if grain == HOUR and cost > baseline * settings.FINOPS_KILL_SWITCH_FACTOR:
                result.kill_switches_on += Feature.objects.filter(
                    key=feature, kill_switch_enabled=True, kill_switch_active_since__isnull=True
                ).update(kill_switch_active_since=now)
    # A tripped switch clears once the last complete hour is back under the factor.
    for feature in Feature.objects.filter(kill_switch_active_since__isnull=False).filter(
        ~Q(kill_switch_active_since__gt=hour - timedelta(hours=1))
    ):
        cost, baseline = rates.get(feature.key, (Decimal(0), Decimal(0)))
        if cost <= baseline * settings.FINOPS_KILL_SWITCH_FACTOR:
            feature.kill_switch_active_since = None
            feature.save(update_fields=["kill_switch_active_since"])
            result.kill_switches_off += 1
    return result
