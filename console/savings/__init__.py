"""The savings ledger: what each optimization lever saved, and what it would save, priced
with the bill's own price book and rules (`finops.pricing`).

Every figure prices the rollups' groups again (`billing.selectors.lever_groups`: one UTC day,
feature, model, provider, region, service tier, rate class and routing tier each): the
group's token vector at another model, service tier, hour or region, with the price rows
in force that day. A group priced at its own row and rate class costs exactly what the
bill says (the cost is linear in the tokens within one rate class); a counterfactual at
another model takes that model's long-context band from the group's mean prompt, as the
rollups keep no single call's size. A group with an unpriced call is left out whole, and
counted (its calls, and the cost of those priced).

The levers:
- **routing**: the actual cost against every call at the feature's default model; per
  routing tier calls, cost and escalation rate; cost per correct output per model.
- **provider cache**: cached input as a share of input, and the cost of the same tokens
  without the cache (cache writes cost more than input: the saving can be negative).
- **application cache**: `cache_hit` calls as a share of calls that report it, and the
  cost avoided (each hit at the mean cost of a call that went to the model).
- **semantic cache**: for a feature without an application cache, the expected hit rate
  (its prompts repeated within the day), the break-even hit rate that pays the cache's
  own monthly cost (`FINOPS_SEMANTIC_CACHE_MONTHLY_COST`), and the net monthly saving.
- **batch**: the share of cost of `batchable` features not run on the batch tier, and
  the saving at the batch rates; what the batch calls already saved.
- **off-peak**: standard-tier cost in the peak hours of models with off-peak rates, and
  the saving of moving the batchable part off-peak; what off-peak calls already saved.
- **provisioned throughput**: per model with a staff-entered offer, the tokens per minute
  of its `steady` features against the offer's capacity, the utilization at which the
  offer breaks even, and the monthly saving.
- **region**: cost by region, and per feature the cheapest region it may use
  (`allowed_regions`, else the regions it uses) priced at that region's rows.
- **prompt trimming**: the input tokens clients report wasted (`wasted_tokens`), each at
  its call's uncached input rate.

Monthly figures scale the window's to 30 days.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from billing.selectors import lever_groups
from finops.models import Tenant
from ingestion.models import Feature

from .groups import (
    DAYS_PER_MONTH,
    QUALITY_CAVEAT,
    Cell,
    Context,
    LeverResult,
    Pricer,
    Recommendation,
    Savings,
    _total,
)  # fmt: skip
from .serving_levers import _batch, _off_peak, _provisioned, _region, _wasted
from .usage_levers import _app_cache, _provider_cache, _routing, _semantic_cache

__all__ = ["QUALITY_CAVEAT", "LeverResult", "Recommendation", "Savings", "savings_compute"]

# --- The ledger ---------------------------------------------------------------------


def savings_compute(*, start: datetime, end: datetime, tenant: Tenant | None = None) -> Savings:
    """Every lever over the whole UTC days of [start, end), for one tenant or all."""
    rows = lever_groups(start=start, end=end, tenant=tenant)
    cells = [Cell.of(row) for row in rows if row["priced_calls"] == row["calls"]]
    left_out = [row for row in rows if row["priced_calls"] != row["calls"]]
    features = {f.key: f for f in Feature.objects.filter(key__in={c.feature for c in cells})}
    defaults = {f.default_model for f in features.values() if f.default_model}
    regions = {r for f in features.values() for r in f.allowed_regions or []}
    days = max(Decimal((end - start).total_seconds()) / 86400, Decimal(1))
    ctx = Context(cells, Pricer(cells, defaults, regions), features, DAYS_PER_MONTH / days)
    levers = [_routing(ctx), _provider_cache(ctx), _app_cache(ctx)]
    advice: list[Recommendation] = []
    for compute in (_semantic_cache, _batch, _off_peak, _provisioned, _region, _wasted):
        lever, found = compute(ctx)
        levers.append(lever)
        advice += found
    advice.sort(key=lambda r: (-r.monthly_saving, r.lever, r.feature))
    return Savings(
        start, end, tenant, _total(cells), _total(cells, "calls"),
        sum(row["calls"] - row["priced_calls"] for row in left_out),
        sum(row["calls"] for row in left_out),
        sum((Decimal(row["cost"]) for row in left_out), Decimal(0)), levers, advice,
    )  # fmt: skip
