"""The usage report: cost and tokens by any of tenant, feature, model, prompt template
and user, per hour, day or month, from the rollups (by user: from the events, which the
rollups do not split by user)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMonth

from billing.models import TOKEN_KINDS, UsageRollup
from finops.fields import ExactSum
from finops.models import Tenant
from finops.money import decimal_string
from ingestion.models import UsageEvent

GROUPS = ("tenant", "feature", "model", "prompt_template", "user")
GRANULARITIES = ("hour", "day", "month")
MAX_ROWS = 50_000

_TRUNC = {"hour": TruncHour, "day": TruncDay, "month": TruncMonth}


class TooManyRows(Exception):
    pass


def usage_report(
    *,
    start: datetime,
    end: datetime,
    group_by: list[str],
    granularity: str,
    tenant: Tenant | None,
) -> list[dict[str, Any]]:
    """Rows ordered by period, then the groups. `start` and `end` must fall on the
    granularity's boundaries (hours; days for day and month) for the rollups to answer
    exactly; callers check that."""
    if "user" in group_by:
        return _from_events(start=start, end=end, group_by=group_by, granularity=granularity,
                            tenant=tenant)  # fmt: skip
    grain = UsageRollup.Grain.HOUR if granularity == "hour" else UsageRollup.Grain.DAY
    rows = UsageRollup.objects.filter(grain=grain, period_start__gte=start, period_start__lt=end)
    fields = {"tenant": "tenant_id", "feature": "feature", "model": "model",
              "prompt_template": "prompt_template"}  # fmt: skip
    return _grouped(rows, "period_start", fields, Sum("calls"), group_by, granularity, tenant)


def _from_events(
    *, start: datetime, end: datetime, group_by: list[str], granularity: str,
    tenant: Tenant | None,
) -> list[dict[str, Any]]:  # fmt: skip
    events = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    fields = {"tenant": "tenant_id", "feature": "feature__key", "model": "model",
              "prompt_template": "prompt_template__key", "user": "user"}  # fmt: skip
    return _grouped(events, "timestamp", fields, Count("id"), group_by, granularity, tenant)


def _grouped(
    rows: Any, time_field: str, fields: dict[str, str], calls: Any, group_by: list[str],
    granularity: str, tenant: Tenant | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The same report from rollups or events: sums per period bucket and group."""
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    names = [fields[g] for g in group_by]
    rows = (
        rows.annotate(bucket=_TRUNC[granularity](time_field, tzinfo=UTC))
        .values("bucket", *names)
        .annotate(calls_sum=calls, cost_sum=ExactSum("cost"),
                  **{f"{k}_sum": Sum(k) for k in TOKEN_KINDS})
        .order_by("bucket", *names)
    )  # fmt: skip
    return _shape(rows, group_by, fields)


def _shape(rows: Any, group_by: list[str], fields: dict[str, str]) -> list[dict[str, Any]]:
    rows = list(rows[: MAX_ROWS + 1])
    if len(rows) > MAX_ROWS:
        raise TooManyRows
    slugs = {}
    if "tenant" in group_by:
        slugs = dict(Tenant.objects.filter(id__in={r["tenant_id"] for r in rows})
                     .values_list("id", "slug"))  # fmt: skip
    result = []
    for row in rows:
        item: dict[str, Any] = {}
        for group in group_by:
            value = row[fields[group]]
            item[group] = slugs.get(value) if group == "tenant" else (value or None)
        item["period_start"] = row["bucket"].astimezone(UTC).isoformat()
        item["calls"] = row["calls_sum"] or 0
        for kind in TOKEN_KINDS:
            item[kind] = row[f"{kind}_sum"] or 0
        item["cost"] = decimal_string(row["cost_sum"] or Decimal(0))
        result.append(item)
    return result
