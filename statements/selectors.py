from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from finops.models import Tenant

from .models import Statement


def statement_list(
    *, tenant: Tenant | None, period: date | None = None, status: str | None = None
) -> QuerySet[Statement]:
    """Statements, of one tenant when given (None: all, for operators)."""
    rows = Statement.objects.select_related("tenant")
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    if period:
        rows = rows.filter(period=period)
    if status:
        rows = rows.filter(status=status)
    return rows
