from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from finops.models import Tenant

from .models import UsageEvent


def event_list(
    *,
    tenant: Tenant | None,
    feature: str | None = None,
    model: str | None = None,
    event_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[UsageEvent]:
    """Events, scoped to `tenant` when given (None: every tenant, for operators)."""
    qs = UsageEvent.objects.select_related("tenant", "feature", "prompt_template")
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    if feature:
        qs = qs.filter(feature__key=feature)
    if model:
        qs = qs.filter(model=model)
    if event_id:
        qs = qs.filter(event_id=event_id)
    if start:
        qs = qs.filter(timestamp__gte=start)
    if end:
        qs = qs.filter(timestamp__lt=end)
    return qs
