"""What the savings ledger (`console.savings`) reads of the rollups: the usage of a window
split by everything a lever can change (model, provider, region, service tier, rate
class, routing tier), per UTC day, so each group can be priced again at another model,
tier, hour or region with the price rows in force that day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Sum

from finops.fields import ExactSum
from finops.models import Tenant
from finops.pricing import TOKEN_COLUMNS

from .models import FeatureRollup, UsageRollup

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
