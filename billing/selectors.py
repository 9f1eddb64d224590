from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db.models import QuerySet

from finops.fields import ExactSum
from finops.models import Tenant

from .models import Alert, Budget, FeatureRollup, UsageRollup


def budget_list() -> QuerySet[Budget]:
    return Budget.objects.select_related("tenant", "feature", "prompt_template")


def alert_list(
    *,
    tenant: Tenant | None,
    tenant_only: bool,
    kind: str | None = None,
    since: datetime | None = None,
) -> QuerySet[Alert]:
    """Alerts; with `tenant_only`, those of `tenant` alone (a tenant key's view)."""
    alerts = Alert.objects.select_related("tenant")
    if tenant is not None or tenant_only:
        alerts = alerts.filter(tenant=tenant)
    if kind:
        alerts = alerts.filter(kind=kind)
    if since:
        alerts = alerts.filter(created_at__gte=since)
    return alerts


def daily_feature_costs(
    *, first: datetime, last: datetime, tenant: Tenant | None = None
) -> dict[tuple[date, str], Decimal]:
    """Cost per UTC day and feature for the days `first` to `last` (both included), of one
    tenant or all, from the daily rollups (every rollup run keeps today's current)."""
    model = FeatureRollup if tenant is None else UsageRollup
    rows = model.objects.filter(grain=model.Grain.DAY, period_start__gte=first,
                                period_start__lte=last)  # fmt: skip
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    grouped = rows.values_list("period_start", "feature").annotate(cost=ExactSum("cost"))
    return {(day.date(), feature): cost for day, feature, cost in grouped.order_by()}
