"""Contractual caps and free-tier LTV: the spend they are judged on, and their alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from finops.fields import ExactSum
from finops.models import Tenant
from finops.money import money_format
from finops.periods import MONTH, period_end, period_start
from finops.revenue import predicted_ltv, tier_plans
from ingestion.models import UsageEvent

from .alerts import alert_raise
from .models import Alert, FeatureCap, UsageRollup

FREE_TIER_WINDOW = timedelta(days=30)


def month_to_date_spend(*, tenant: Tenant, month: datetime, feature: str | None = None) -> Decimal:
    """From the daily rollups: exact, and at most one rollup interval behind."""
    rows = UsageRollup.objects.filter(
        grain=UsageRollup.Grain.DAY,
        tenant=tenant,
        period_start__gte=month,
        period_start__lt=period_end(MONTH, month),
    )
    if feature is not None:
        rows = rows.filter(feature=feature)
    return rows.aggregate(spend=ExactSum("cost"))["spend"] or Decimal(0)


def free_window_cost(*, tenant: Tenant, now: datetime) -> Decimal:
    """The tenant's cost in its first 30 days after signup, from the events themselves
    (the window starts mid-hour, so hourly rollups would not be exact)."""
    end = min(tenant.signup_at + FREE_TIER_WINDOW, now)
    events = UsageEvent.objects.filter(
        tenant=tenant, timestamp__gte=tenant.signup_at, timestamp__lt=end
    )
    return events.aggregate(cost=ExactSum("cost"))["cost"] or Decimal(0)


def cap_overridden(tenant: Tenant, now: datetime) -> bool:
    return tenant.cap_override_until is not None and tenant.cap_override_until > now


@dataclass(slots=True)
class CapCheck:
    alerts: int = 0


def caps_check(*, now: datetime) -> CapCheck:
    """One `cap_reached` alert per tenant (or tenant and feature) and month at the cap."""
    result = CapCheck()
    month = period_start(MONTH, now)
    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE, monthly_cap__isnull=False)
    for tenant in tenants:
        if cap_overridden(tenant, now):
            continue
        spend = month_to_date_spend(tenant=tenant, month=month)
        if spend >= tenant.monthly_cap and _cap_alert(
            tenant, None, tenant.monthly_cap, spend, month, now
        ):
            result.alerts += 1
    for cap in FeatureCap.objects.select_related("tenant", "feature"):
        if cap.tenant.status != Tenant.Status.ACTIVE or cap_overridden(cap.tenant, now):
            continue
        spend = month_to_date_spend(tenant=cap.tenant, month=month, feature=cap.feature.key)
        if spend >= cap.monthly_cap and _cap_alert(
            cap.tenant, cap.feature.key, cap.monthly_cap, spend, month, now
        ):
            result.alerts += 1
    return result


def _cap_alert(
    tenant: Tenant,
    feature: str | None,
    cap: Decimal,
    spend: Decimal,
    month: datetime,
    now: datetime,
) -> Alert | None:
    currency = tenant.billing_currency
    scope = f"{tenant.slug} / {feature}" if feature else tenant.slug
    return alert_raise(
        kind=Alert.Kind.CAP_REACHED,
        severity=Alert.Severity.CRITICAL,  # the guard blocks from now on
        dedup_key=f"cap:{tenant.id}:{feature or ''}:{month:%Y%m}",
        message=(
            f"{scope}: month-to-date spend {money_format(spend, currency)} reached "
            f"the contractual cap of {money_format(cap, currency)} for {month:%Y-%m}."
        ),
        now=now,
        tenant=tenant,
        feature=feature or "",
        period_start=month,
        value=spend,
    )


def ltv_check(*, now: datetime) -> CapCheck:
    """One `tenant_throttled` alert for each free-tier tenant whose cost in its first
    30 days exceeds its predicted lifetime value: the one staff set, else the one its
    tier plans predict (`finops.revenue.predicted_ltv`)."""
    result = CapCheck()
    plans = tier_plans()
    tenants = Tenant.objects.filter(
        tier=Tenant.Tier.FREE,
        status=Tenant.Status.ACTIVE,
        signup_at__gt=now - FREE_TIER_WINDOW - timedelta(days=1),
    )
    for tenant in tenants:
        ltv = predicted_ltv(tenant, plans)
        if ltv is None:
            continue
        cost = free_window_cost(tenant=tenant, now=now)
        if cost > ltv and _ltv_alert(tenant, ltv, cost, now):
            result.alerts += 1
    return result


def _ltv_alert(tenant: Tenant, ltv: Decimal, cost: Decimal, now: datetime) -> Alert | None:
    currency = tenant.billing_currency
    derived = " (derived from the tier plans)" if tenant.predicted_ltv is None else ""
    return alert_raise(
        kind=Alert.Kind.TENANT_THROTTLED,
        severity=Alert.Severity.WARNING,
        dedup_key=f"ltv:{tenant.id}",
        message=(
            f"{tenant.slug} (free tier) cost {money_format(cost, currency)} in its "
            f"first 30 days, above its predicted lifetime value of "
            f"{money_format(ltv, currency)}{derived}."
        ),
        now=now,
        tenant=tenant,
        period_start=tenant.signup_at,
        value=cost,
    )
