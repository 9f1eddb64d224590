from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMonth

from finops.fields import ExactSum
from finops.models import Tenant
from finops.periods import DAY, period_start
from finops.pricing import TOKEN_COLUMNS
from ingestion.models import Feature, PromptTemplate

from .models import Alert, Budget, FeatureRollup, RateLimit, UsageRollup


def budget_list(*, tenant: Tenant | None = None, tenant_only: bool = False) -> QuerySet[Budget]:
    """Budgets; of `tenant` when given, and with `tenant_only` of `tenant` alone (a tenant
    key's view: never the global ones)."""
    budgets = Budget.objects.select_related("tenant", "feature", "prompt_template", "api_key")
    if tenant is not None or tenant_only:
        budgets = budgets.filter(tenant=tenant)
    return budgets


def rate_limit_list(
    *, tenant: Tenant | None = None, tenant_only: bool = False
) -> QuerySet[RateLimit]:
    """Rate limits, narrowed as `budget_list` narrows budgets."""
    limits = RateLimit.objects.select_related("tenant", "feature", "prompt_template", "api_key")
    if tenant is not None or tenant_only:
        limits = limits.filter(tenant=tenant)
    return limits


def features_used_by(*, tenant: Tenant) -> QuerySet[Feature]:
    """The features in the tenant's own usage (its daily rollups): what a tenant key may
    name. Features are shared by all tenants, so one the tenant never used must look to
    it as if it did not exist."""
    used = UsageRollup.objects.filter(grain=UsageRollup.Grain.DAY, tenant=tenant)
    return Feature.objects.filter(key__in=used.values("feature"))


def prompt_templates_used_by(*, tenant: Tenant) -> QuerySet[PromptTemplate]:
    """The prompt templates in the tenant's own usage, as `features_used_by`."""
    used = UsageRollup.objects.filter(grain=UsageRollup.Grain.DAY, tenant=tenant)
    return PromptTemplate.objects.filter(key__in=used.values("prompt_template"))


def alert_list(
    *,
    tenant: Tenant | None,
    tenant_only: bool,
    kind: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
) -> QuerySet[Alert]:
    """Alerts; with `tenant_only`, those of `tenant` alone (a tenant key's view)."""
    alerts = Alert.objects.select_related("tenant")
    if tenant is not None or tenant_only:
        alerts = alerts.filter(tenant=tenant)
    if kind:
        alerts = alerts.filter(kind=kind)
    if severity:
        alerts = alerts.filter(severity=severity)
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


# --- The rollups, for the console and statements ---------------------------------------

_TRUNC = {"hour": TruncHour, "day": TruncDay, "month": TruncMonth}


def _window_filter(start: datetime, end: datetime) -> Q:
    """Daily rows for the whole days inside [start, end), hourly rows for its edges."""
    first_day = period_start(DAY, start)
    if first_day < start:
        first_day += timedelta(days=1)
    last_day = period_start(DAY, end)
    if last_day <= first_day:
        return Q(grain=UsageRollup.Grain.HOUR, period_start__gte=start, period_start__lt=end)
    return (
        Q(grain=UsageRollup.Grain.DAY, period_start__gte=first_day, period_start__lt=last_day)
        | Q(grain=UsageRollup.Grain.HOUR, period_start__gte=start, period_start__lt=first_day)
        | Q(grain=UsageRollup.Grain.HOUR, period_start__gte=last_day, period_start__lt=end)
    )


def window_sums_by_feature_model_tier(
    *,
    start: datetime,
    end: datetime,
    tenant: Tenant | None,
    feature: str | None,
    counts: Sequence[str],
    moneys: Sequence[str],
    slices: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Sums of `counts` (integers, None when no row) and `moneys` (exact) over [start, end)
    on hour boundaries, by feature, model and routing tier: across tenants from
    `FeatureRollup` (a few rows a day), for one tenant from `UsageRollup`. `slices` keeps
    the rows of given values of the rollups' slices (region, provider, service tier,
    routing tier, the tag; `tenant_tier` across tenants only)."""
    if tenant is None:
        rows = FeatureRollup.objects.filter(_window_filter(start, end))
    else:
        rows = UsageRollup.objects.filter(_window_filter(start, end), tenant=tenant)
    if feature is not None:
        rows = rows.filter(feature=feature)
    if slices:
        rows = rows.filter(**slices)
    sums = {name: Sum(name) for name in counts} | {name: ExactSum(name) for name in moneys}
    return list(rows.values("feature", "model", "routing_tier").annotate(**sums).order_by())


def daily_usage_by(*, field: str, since: datetime, until: datetime) -> dict[str, dict[str, Any]]:
    """Per value of `field` (feature, prompt_template or model; '' left out), from the
    daily rollups of [since, until): `calls_sum`, `cost_sum`, the `last` day used and
    `tenants_n`, how many tenants used it."""
    rows = (
        UsageRollup.objects.filter(grain=UsageRollup.Grain.DAY, period_start__gte=since,
                                   period_start__lt=until)
        .exclude(**{field: ""})
        .values(field)
        .annotate(calls_sum=Sum("calls"), cost_sum=ExactSum("cost"), last=Max("period_start"),
                  tenants_n=Count("tenant_id", distinct=True))
    )  # fmt: skip
    return {row[field]: row for row in rows}


def tenant_ids_with_usage(*, start: datetime, end: datetime) -> list[int]:
    """The tenants with usage on the UTC days in [start, end), by id."""
    days = UsageRollup.objects.filter(
        grain=UsageRollup.Grain.DAY, period_start__gte=start, period_start__lt=end
    )
    return sorted(set(days.values_list("tenant_id", flat=True)))


def tenant_ids_using(*, field: str, value: str, since: datetime) -> list[int]:
    """The tenants whose daily rollups since `since` have `value` in `field`."""
    rows = UsageRollup.objects.filter(
        grain=UsageRollup.Grain.DAY, period_start__gte=since, **{field: value}
    )
    return list(rows.values_list("tenant_id", flat=True).distinct())


def _days_across_tenants(start: datetime, end: datetime) -> QuerySet[FeatureRollup]:
    return FeatureRollup.objects.filter(
        grain=FeatureRollup.Grain.DAY, period_start__gte=start, period_start__lt=end
    )


def feature_costs(*, start: datetime, end: datetime) -> dict[str, Decimal]:
    """Cost per feature ('' for none) over the whole UTC days of [start, end), all tenants."""
    rows = _days_across_tenants(start, end).values("feature").annotate(total=ExactSum("cost"))
    return {row["feature"]: row["total"] for row in rows.order_by()}


def feature_model_tokens(
    *, start: datetime, end: datetime, features: Iterable[str]
) -> list[dict[str, Any]]:
    """Per feature of `features` and model over the days of [start, end), all tenants: the
    sum of each token kind (by its column name) and `cost_sum`."""
    rows = (
        _days_across_tenants(start, end).filter(feature__in=features)
        .values("feature", "model").annotate(**{k: Sum(k) for k in TOKEN_COLUMNS})
        .annotate(cost_sum=ExactSum("cost")).order_by()
    )  # fmt: skip
    return list(rows)


def feature_costs_by_day(
    *, start: datetime, end: datetime, tenant: Tenant | None
) -> dict[str, dict[date, Decimal]]:
    """Cost per feature and UTC day, from the daily rollups (whole days) and the hourly ones
    (the day in progress, counted on its day), of one tenant or all."""
    today = period_start(DAY, end)
    out: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for grain, low, high in ((UsageRollup.Grain.DAY, start, today),
                             (UsageRollup.Grain.HOUR, max(start, today), end)):  # fmt: skip
        if high <= low:
            continue
        if tenant is None:
            rows = FeatureRollup.objects.filter(grain=grain, period_start__gte=low,
                                                period_start__lt=high)  # fmt: skip
        else:
            rows = UsageRollup.objects.filter(grain=grain, period_start__gte=low,
                                              period_start__lt=high, tenant=tenant)  # fmt: skip
        if grain == UsageRollup.Grain.DAY:
            grouped = rows.values("feature", "period_start").annotate(total=ExactSum("cost"))
            for row in grouped.order_by():
                out[row["feature"]][row["period_start"].date()] += row["total"]
        else:
            grouped = rows.values("feature").annotate(total=ExactSum("cost"))
            for row in grouped.order_by():
                out[row["feature"]][today.date()] += row["total"]
    return out


def tenant_tier_sums(*, first: datetime, last: datetime) -> dict[str, tuple[int, Decimal]]:
    """(calls, cost) per tenant tier (the tenants' tier when they made the calls) over the
    UTC days `first` to `last`, both included."""
    return slice_sums(first=first, last=last, field="tenant_tier")


SLICE_FIELDS = ("region", "provider", "service_tier", "routing_tier", "tenant_tier", "tag")


def slice_sums(*, first: datetime, last: datetime, field: str) -> dict[str, tuple[int, Decimal]]:
    """(calls, cost) per value of one of the rollups' slices (`SLICE_FIELDS`) across
    tenants, over the UTC days `first` to `last`, both included."""
    if field not in SLICE_FIELDS:
        raise ValueError(f"not a slice: {field}")
    rows = (
        FeatureRollup.objects.filter(grain=FeatureRollup.Grain.DAY, period_start__gte=first,
                                     period_start__lte=last)
        .values_list(field)
        .annotate(calls=Sum("calls"), cost=ExactSum("cost"))
        .order_by()
    )  # fmt: skip
    return {value: (calls or 0, cost or Decimal(0)) for value, calls, cost in rows}


def usage_buckets(
    *,
    start: datetime,
    end: datetime,
    granularity: str,
    tenant: Tenant | None,
    by: Sequence[str],
    across_tenants: bool = False,
) -> QuerySet:
    """Rollup sums per `granularity` bucket (hour, day or month) and the fields `by` (any
    key column of the rollups read), ordered: `bucket`, the fields, `calls_sum`,
    `cost_sum` and `<token kind>_sum`. `start` and `end` on the granularity's boundaries
    (hours; days for day and month). From `UsageRollup`, of `tenant` or all; with
    `across_tenants` from `FeatureRollup` (every tenant, `tenant` None; by `tenant_tier`
    too, but neither tenant nor prompt template)."""
    model = FeatureRollup if across_tenants else UsageRollup
    if across_tenants and tenant is not None:
        raise ValueError("the rollups across tenants hold every tenant's usage only")
    grain = model.Grain.HOUR if granularity == "hour" else model.Grain.DAY
    rows = model.objects.filter(grain=grain, period_start__gte=start, period_start__lt=end)
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    return (
        rows.annotate(bucket=_TRUNC[granularity]("period_start", tzinfo=UTC))
        .values("bucket", *by)
        .annotate(calls_sum=Sum("calls"), cost_sum=ExactSum("cost"),
                  **{f"{k}_sum": Sum(k) for k in TOKEN_COLUMNS})
        .order_by("bucket", *by)
    )  # fmt: skip


# --- The savings ledger (console.savings) and the digest's root cause ------------------
# The usage of a window split by everything a lever can change (model, provider, region,
# service tier, rate class, routing tier), per UTC day, so each group can be priced again
# at another model, tier, hour or region with the price rows in force that day.

# What a lever changes, and so what the groups keep apart.
LEVER_KEYS = ("period_start", "feature", "model", "provider", "region", "service_tier",
              "above_tokens", "off_peak", "routing_tier")  # fmt: skip
LEVER_COUNTS = ("calls", "priced_calls", *TOKEN_COLUMNS, "outcome_calls", "correct_calls",
                "hashed_calls", "repeat_calls", "escalated_calls", "cache_known_calls",
                "cache_hit_calls")  # fmt: skip
LEVER_MONEYS = ("cost", "outcome_cost", "cache_hit_cost")


def lever_groups(*, start: datetime, end: datetime, tenant: Tenant | None) -> list[dict[str, Any]]:
    """The daily rollups of the whole UTC days of [start, end) summed by `LEVER_KEYS`:
    across tenants from `FeatureRollup`, for one tenant from `UsageRollup`."""
    if tenant is None:
        rows = FeatureRollup.objects.filter(grain=FeatureRollup.Grain.DAY)
    else:
        rows = UsageRollup.objects.filter(grain=UsageRollup.Grain.DAY, tenant=tenant)
    rows = (
        rows.filter(period_start__gte=start, period_start__lt=end)
        .values(*LEVER_KEYS)
        .annotate(**{f"{name}_total": Sum(name) for name in LEVER_COUNTS},
                  **{f"{name}_total": ExactSum(name) for name in LEVER_MONEYS})
        .order_by()
    )  # fmt: skip
    return [
        {**{key: row[key] for key in LEVER_KEYS},
         **{name: row[f"{name}_total"] or 0 for name in (*LEVER_COUNTS, *LEVER_MONEYS)}}
        for row in rows
    ]  # fmt: skip


def change_groups(*, start: datetime, end: datetime) -> dict[tuple[int, str, str], tuple]:
    """(calls, cost) per (tenant id, feature, model) over the whole UTC days of
    [start, end): what the weekly digest explains a change of cost by."""
    rows = (
        UsageRollup.objects.filter(
            grain=UsageRollup.Grain.DAY, period_start__gte=start, period_start__lt=end
        )
        .values_list("tenant_id", "feature", "model")
        .annotate(calls_total=Sum("calls"), cost_total=ExactSum("cost"))
        .order_by()
    )
    return {(tenant, feature, model): (calls or 0, cost or 0)
            for tenant, feature, model, calls, cost in rows}  # fmt: skip


# --- Operations: what the metrics scrape reads (ops.metrics) --------------------------
# Imports inside the functions: the scrape is their only caller.


def rollup_lag_seconds(*, now: datetime) -> float:
    """How far the rollups are behind the ledger: the age of the oldest event that no run
    has folded yet, by the time it was received (its transaction commits just after), or
    0 when every event is folded. A stalled worker shows as a lag that grows with each
    event received; a quiet hour with nothing to fold is no lag."""
    from django.db import connection
    from django.db.models import Min

    from ingestion.models import UsageEvent

    from .models import RollupWatermark
    from .rollups import WATERMARK

    mark = RollupWatermark.objects.filter(name=WATERMARK).first()
    position = mark.events_position if mark is not None else 0
    if connection.vendor == "postgresql":
        # Transaction ids: a run folded every event below its position; the events' BRIN
        # index on `xact` finds the ones at or above it.
        unfolded = UsageEvent.objects.filter(xact__gte=position)
        oldest = unfolded.aggregate(oldest=Min("received_at"))["oldest"]
    else:
        # Row ids, in commit order: the first one above the position is the oldest.
        unfolded = UsageEvent.objects.filter(id__gt=position).order_by("id")
        oldest = unfolded.values_list("received_at", flat=True).first()
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def rollup_last_run_get() -> datetime | None:
    """When a rollup run last committed (None: never)."""
    from .models import RollupWatermark
    from .rollups import WATERMARK

    mark = RollupWatermark.objects.filter(name=WATERMARK).first()
    return mark.updated_at if mark is not None else None


def alert_delivery_counts() -> dict[str, int]:
    """Alert deliveries not sent, per status: pending (waiting, or waiting to retry),
    sending (claimed by a worker) and failed (given up)."""
    from django.db.models import Count

    from .models import AlertDelivery

    unsent = [AlertDelivery.Status.PENDING.value, AlertDelivery.Status.SENDING.value,
              AlertDelivery.Status.FAILED.value]  # fmt: skip
    rows = AlertDelivery.objects.filter(status__in=unsent).values_list("status")
    counts = dict.fromkeys(unsent, 0)
    counts.update(rows.annotate(n=Count("id")).order_by())
    return counts


# --- The savings ledger (console.decisions, console.projection) -------------------------


def feature_calls_costs_by_day(
    *, start: datetime, end: datetime, features: Iterable[str]
) -> dict[str, dict[date, tuple[int, Decimal]]]:
    """(calls, cost) per feature of `features` and UTC day over the whole days of
    [start, end), all tenants, from the daily rollups; a day without usage is absent."""
    rows = (
        _days_across_tenants(start, end).filter(feature__in=list(features))
        .values("feature", "period_start")
        .annotate(calls_sum=Sum("calls"), cost_sum=ExactSum("cost")).order_by()
    )  # fmt: skip
    out: dict[str, dict[date, tuple[int, Decimal]]] = defaultdict(dict)
    for row in rows:
        out[row["feature"]][row["period_start"].date()] = (
            row["calls_sum"] or 0, row["cost_sum"] or Decimal(0))  # fmt: skip
    return out


def total_cost(*, start: datetime, end: datetime) -> Decimal:
    """The cost of the whole UTC days of [start, end), all tenants and features."""
    total = _days_across_tenants(start, end).aggregate(total=ExactSum("cost"))["total"]
    return total if total is not None else Decimal(0)


# --- Unit economics (console.economics) -----------------------------------------------


def tenant_feature_costs(*, start: datetime, end: datetime) -> dict[tuple[int, str], Decimal]:
    """Cost per (tenant id, feature; '' for none) over [start, end) on hour boundaries,
    from the daily rollups for its whole days and the hourly ones at its edges. Exact."""
    rows = (
        UsageRollup.objects.filter(_window_filter(start, end))
        .values_list("tenant_id", "feature")
        .annotate(cost=ExactSum("cost"))
        .order_by()
    )
    return {(tenant_id, feature): cost for tenant_id, feature, cost in rows if cost is not None}
