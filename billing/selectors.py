from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from finops.models import Tenant

from .models import Alert, Budget


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
