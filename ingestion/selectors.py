from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMonth

from finops.fields import ExactSum
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


def event_model_list() -> set[str]:
    """Every model that has events."""
    return set(UsageEvent.objects.values_list("model", flat=True).distinct())


def tenant_has_events(*, tenant: Tenant, start: datetime, end: datetime) -> bool:
    return UsageEvent.objects.filter(
        tenant=tenant, timestamp__gte=start, timestamp__lt=end
    ).exists()


def event_line_sums(
    *, start: datetime, end: datetime, tenant_ids: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """The events of [start, end) grouped by tenant, feature id, model, price id and rate
    class (service tier, long-context threshold, off-peak), with the token sums of each
    line kind: `input` (beyond cache reads and writes), `cached_input`, `cache_write` (5
    minutes), `cache_write_1h`, `output` (beyond reasoning), `reasoning`, `query`.
    Integers only, grouped by ids with no join: one cheap pass over a month."""
    events = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    if tenant_ids is not None:
        events = events.filter(tenant_id__in=list(tenant_ids))
    groups = events.values(
        "tenant_id", "feature_id", "model", "price_id", "service_tier", "above_tokens", "off_peak"
    ).annotate(
        input=Sum(F("input_tokens") - F("cached_input_tokens") - F("cache_write_tokens")),
        cached_input=Sum("cached_input_tokens"),
        cache_write=Sum(F("cache_write_tokens") - F("cache_write_1h_tokens")),
        cache_write_1h=Sum("cache_write_1h_tokens"),
        output=Sum(F("output_tokens") - F("reasoning_tokens")),
        reasoning=Sum("reasoning_tokens"),
        query=Sum("queries"),
    )
    return list(groups.order_by())


def priced_cost_by_provider(*, start: datetime, end: datetime) -> dict[tuple[str, str], dict]:
    """The priced events of [start, end) by (provider of their price, '(unknown)' for
    none; currency): `cost` (exact) and `calls`."""
    events = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end, price__isnull=False)
    return {
        (row["price__provider"] or "(unknown)", row["currency"]): row
        for row in events.values("price__provider", "currency").annotate(
            cost=ExactSum("cost"), calls=Count("id")
        )
    }


_TRUNC = {"hour": TruncHour, "day": TruncDay, "month": TruncMonth}


def event_usage_buckets(
    *,
    start: datetime,
    end: datetime,
    granularity: str,
    tenant: Tenant | None,
    by: Sequence[str],
    token_columns: Sequence[str],
) -> QuerySet:
    """Event sums per `granularity` bucket (hour, day or month) and the fields `by`
    (tenant_id, feature__key, model, prompt_template__key, user), ordered: `bucket`, the
    fields, `calls_sum`, `cost_sum` and `<column>_sum` for each of `token_columns`."""
    events = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    if tenant is not None:
        events = events.filter(tenant=tenant)
    return (
        events.annotate(bucket=_TRUNC[granularity]("timestamp", tzinfo=UTC))
        .values("bucket", *by)
        .annotate(calls_sum=Count("id"), cost_sum=ExactSum("cost"),
                  **{f"{k}_sum": Sum(k) for k in token_columns})
        .order_by("bucket", *by)
    )  # fmt: skip
