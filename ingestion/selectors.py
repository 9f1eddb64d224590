from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import CharField, Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, Concat, TruncDay, TruncHour, TruncMonth

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


def feature_reach_sums(*, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Distinct end users and sessions in the events of [start, end), per feature and
    over all events, in one statement: `feature` (the feature's key; None for the row of
    all events, including those without a feature), `users` (distinct non-empty `user`
    per tenant: the same string in two tenants is two users), `sessions` (likewise) and
    `session_cost`, the exact cost of the calls made in a session.

    One pass per half of a UNION ALL over the time index; PostgreSQL and SQLite both
    count DISTINCT on the text `tenant_id:user` (an id holds no colon, so it is unique)."""
    events = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    sums = {
        "users": Count(_per_tenant("user"), distinct=True, filter=~Q(user="")),
        "sessions": Count(_per_tenant("session"), distinct=True, filter=~Q(session="")),
        "session_cost": ExactSum("cost", filter=~Q(session="")),
    }
    per_feature = (
        events.filter(feature__isnull=False)
        .values(key=F("feature__key"))
        .annotate(**sums)
        .order_by()
    )
    overall = (
        events.annotate(key=Value(None, output_field=CharField()))
        .values("key")
        .annotate(**sums)
        .order_by()
    )
    return [
        {"feature": row["key"], "users": row["users"], "sessions": row["sessions"],
         "session_cost": row["session_cost"] or Decimal(0)}
        for row in per_feature.union(overall, all=True)
    ]  # fmt: skip


def _per_tenant(field: str) -> Concat:
    return Concat(Cast("tenant_id", CharField()), Value(":"), field, output_field=CharField())
