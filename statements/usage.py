"""The usage report: cost and tokens by any of tenant, feature, model, prompt template
and user, per hour, day or month, from the rollups (by user: from the events, which the
rollups do not split by user)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.selectors import usage_buckets
from finops.models import Tenant
from finops.money import decimal_string
from finops.pricing import TOKEN_COLUMNS
from ingestion.selectors import event_usage_buckets

GROUPS = ("tenant", "feature", "model", "prompt_template", "user")
GRANULARITIES = ("hour", "day", "month")
MAX_ROWS = 50_000


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
    fields = {"tenant": "tenant_id", "feature": "feature", "model": "model",
              "prompt_template": "prompt_template"}  # fmt: skip
    rows = usage_buckets(start=start, end=end, granularity=granularity, tenant=tenant,
                         by=[fields[g] for g in group_by])  # fmt: skip
    return _shape(rows, group_by, fields)


def _from_events(
    *, start: datetime, end: datetime, group_by: list[str], granularity: str,
    tenant: Tenant | None,
) -> list[dict[str, Any]]:  # fmt: skip
    fields = {"tenant": "tenant_id", "feature": "feature__key", "model": "model",
              "prompt_template": "prompt_template__key", "user": "user"}  # fmt: skip
    rows = event_usage_buckets(
        start=start, end=end, granularity=granularity, tenant=tenant,
        by=[fields[g] for g in group_by], token_columns=TOKEN_COLUMNS,
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
        for kind in TOKEN_COLUMNS:
            item[kind] = row[f"{kind}_sum"] or 0
        item["cost"] = decimal_string(row["cost_sum"] or Decimal(0))
        result.append(item)
    return result
