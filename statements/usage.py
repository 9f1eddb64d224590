"""The usage report: cost and tokens by any of tenant, feature, model, prompt template,
user, region, provider, routing tier, service tier, tenant tier and the reported tag, per
hour, day or month, from the rollups where they hold every group asked for, else from
the events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.selectors import usage_buckets
from finops.models import Tenant
from finops.money import decimal_string
from finops.pricing import TOKEN_COLUMNS
from ingestion.selectors import event_usage_buckets

GRANULARITIES = ("hour", "day", "month")
MAX_ROWS = 50_000

# Where each group is read, by source, in the order the report tries them: the rollups
# per tenant (`UsageRollup`), the rollups across tenants (`FeatureRollup`: every tenant
# only; the tenants' tier when they made the calls), the events (slower: every event of
# the range is read). None: the source does not have it. The rollups keep no end user and
# the events' tag is not a column: no source has both.
SOURCES = ("usage", "across_tenants", "events")
FIELDS: dict[str, tuple[str | None, str | None, str | None]] = {
    "tenant": ("tenant_id", None, "tenant_id"),
    "feature": ("feature", "feature", "feature__key"),
    "model": ("model", "model", "model"),
    "prompt_template": ("prompt_template", None, "prompt_template__key"),
    "user": (None, None, "user"),
    "region": ("region", "region", "region"),
    "provider": ("provider", "provider", "provider"),
    "routing_tier": ("routing_tier", "routing_tier", "routing_tier"),
    "service_tier": ("service_tier", "service_tier", "service_tier"),
    "tenant_tier": (None, "tenant_tier", "tenant_tier"),
    "tag": ("tag", "tag", None),
}
GROUPS = tuple(FIELDS)


class TooManyRows(Exception):
    pass


class GroupsApart(Exception):
    """No source holds every group asked for, for this tenant scope."""


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
    exactly; callers check that. Raises GroupsApart when no source has all the groups."""
    source = usage_source(group_by=group_by, tenant=tenant)
    fields = {g: FIELDS[g][SOURCES.index(source)] for g in group_by}
    by = [fields[g] for g in group_by]
    if source == "events":
        rows = event_usage_buckets(start=start, end=end, granularity=granularity, tenant=tenant,
                                   by=by, token_columns=TOKEN_COLUMNS)  # fmt: skip
    else:
        rows = usage_buckets(start=start, end=end, granularity=granularity, tenant=tenant,
                             by=by, across_tenants=source == "across_tenants")  # fmt: skip
    return _shape(rows, group_by, fields)


def usage_source(*, group_by: list[str], tenant: Tenant | None) -> str:
    """The first source that has every group of `group_by` (across tenants: only when
    `tenant` is None)."""
    for i, source in enumerate(SOURCES):
        if source == "across_tenants" and tenant is not None:
            continue
        if all(FIELDS[g][i] is not None for g in group_by):
            return source
    if "tag" in group_by and "user" in group_by:
        raise GroupsApart("tag and user cannot be grouped together: the rollups keep the "
                          "tag, and only the events the user.")  # fmt: skip
    raise GroupsApart("tag and tenant_tier are grouped together across all tenants only, "
                      "without tenant or prompt_template.")  # fmt: skip


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
