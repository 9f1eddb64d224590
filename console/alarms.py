"""Metric alarms: the weekly review's predictive metrics, and the week's cost against its
projection, checked on the last complete week (Monday to Monday, UTC) across tenants and
for each tenant with usage that week.

A metric in warning raises one `metric_warning` alert per metric, scope and week; an open
one is resolved (with one resolved notice) when its metric is healthy again. A week that
cost more than 20 percent above what the projection foresaw for it at its start raises
one `projection_overrun` per scope and week. The job runs daily: a later run of the same
week raises nothing twice and sees the usage that arrived late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from billing.alerts import alert_raise, alerts_resolve
from billing.models import Alert
from billing.selectors import feature_costs_by_day, tenant_ids_with_usage
from finops.models import Tenant
from finops.money import money_format

from .digest import week_bounds
from .metrics import HEALTHY, WARNING, Metric, Window, metrics_compute
from .projection import projected_cost

# A week costing more than this percent above its projection is an overrun.
OVERRUN_PERCENT = 20
# Metrics that alarm across tenants only: one tenant's cost sits in few features by
# nature, so its concentration says nothing about the portfolio.
PLATFORM_ONLY_METRICS = frozenset({"feature_cost_concentration"})


@dataclass(slots=True)
class AlarmCheck:
    scopes: int = 0
    raised: int = 0
    resolved: int = 0
    overruns: int = 0


def _tenants_with_usage(start: datetime, end: datetime) -> list[Tenant]:
    ids = tenant_ids_with_usage(start=start, end=end)
    return list(Tenant.objects.filter(id__in=ids).order_by("id"))


def _scope(tenant: Tenant | None) -> str:
    """The scope as dedup keys name it."""
    return str(tenant.id) if tenant else "all"


def _who(tenant: Tenant | None) -> str:
    return f"Tenant {tenant.slug}" if tenant else "All tenants"


def _metric_key_prefix(name: str, tenant: Tenant | None) -> str:
    return f"metric:{name}:{_scope(tenant)}:"


def _metric_text(metric: Metric) -> str:
    if metric.message.startswith(metric.label):
        return metric.message
    return f"{metric.label}: {metric.message}"


def _metric_alarm(metric: Metric, tenant: Tenant | None, start: datetime, now: datetime) -> bool:
    alert = alert_raise(
        kind=Alert.Kind.METRIC_WARNING,
        severity=Alert.Severity.WARNING,
        dedup_key=f"{_metric_key_prefix(metric.name, tenant)}{start:%Y%m%d}",
        message=f"{_who(tenant)}, week of {start:%Y-%m-%d}: {_metric_text(metric)}.",
        now=now,
        tenant=tenant,
        period_start=start,
        value=metric.value,
    )
    return alert is not None


def _metric_clear(name: str, tenant: Tenant | None, start: datetime, now: datetime) -> int:
    """Resolve the metric's open alerts of this scope up to this week."""
    open_alerts = Alert.objects.filter(
        kind=Alert.Kind.METRIC_WARNING,
        tenant=tenant,
        resolved_at__isnull=True,
        period_start__lte=start,
        dedup_key__startswith=_metric_key_prefix(name, tenant),
    ).order_by("id")
    return alerts_resolve(alerts=open_alerts, now=now)


def metric_alarms_check(*, now: datetime, result: AlarmCheck | None = None) -> AlarmCheck:
    """Raise or resolve each metric's alarm for last week, across tenants and per tenant.
    A metric without data that week leaves its alarm as it is."""
    result = result or AlarmCheck()
    start, end = week_bounds(now)
    for tenant in [None, *_tenants_with_usage(start, end)]:
        result.scopes += 1
        for metric in metrics_compute(Window(start, end, tenant)):
            if tenant is not None and metric.name in PLATFORM_ONLY_METRICS:
                continue
            if metric.status == WARNING:
                result.raised += _metric_alarm(metric, tenant, start, now)
            elif metric.status == HEALTHY:
                result.resolved += _metric_clear(metric.name, tenant, start, now)
    return result


def _week_cost(start: datetime, end: datetime, tenant: Tenant | None) -> Decimal:
    costs = feature_costs_by_day(start=start, end=end, tenant=tenant)
    return sum((cost for per_day in costs.values() for cost in per_day.values()), Decimal(0))


def projection_overruns_check(*, now: datetime, result: AlarmCheck | None = None) -> AlarmCheck:
    """Raise `projection_overrun` for last week, across tenants and per tenant, where it
    cost more than OVERRUN_PERCENT above the projection made at its start. A scope with
    nothing projected (no cost in the 14 days before) has no projection to overrun."""
    result = result or AlarmCheck()
    start, end = week_bounds(now)
    for tenant in [None, *_tenants_with_usage(start, end)]:
        actual = _week_cost(start, end, tenant)
        projected = projected_cost(start=start, end=end, tenant=tenant)
        if projected <= 0 or actual * 100 <= projected * (100 + OVERRUN_PERCENT):
            continue
        currency = tenant.billing_currency if tenant else "USD"
        over = ((actual - projected) * 100 / projected).quantize(Decimal(1), ROUND_HALF_UP)
        alert = alert_raise(
            kind=Alert.Kind.PROJECTION_OVERRUN,
            severity=Alert.Severity.WARNING,
            dedup_key=f"projection:{_scope(tenant)}:{start:%Y%m%d}",
            message=(
                f"{_who(tenant)}: the week of {start:%Y-%m-%d} cost "
                f"{money_format(actual, currency)}, {over}% above the "
                f"{money_format(projected, currency)} projected at its start."
            ),
            now=now,
            tenant=tenant,
            period_start=start,
            threshold=100 + OVERRUN_PERCENT,
            value=actual,
        )
        result.overruns += alert is not None
    return result


def alarms_check(*, now: datetime) -> AlarmCheck:
    """The daily alarm job: the metrics, then the projection, of the last complete week."""
    result = metric_alarms_check(now=now)
    return projection_overruns_check(now=now, result=result)
