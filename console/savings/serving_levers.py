"""The levers on when, where and how calls are bought: the batch API, off-peak hours,
provisioned throughput, the region, and trimming wasted prompt tokens."""

from __future__ import annotations

import math
from decimal import Decimal

from django.conf import settings

from finops.pricing import RateCard, TokenVector

from ..models import Lever as LeverKind
from ..models import ProvisionedOffer
from .groups import (
    BATCH,
    MINUTES_PER_MONTH,
    STANDARD,
    Cell,
    Context,
    LeverResult,
    Recommendation,
    _micros,
    _pct,
    _priced_sum,
    _ratio,
    _total,
    _workload,
)  # fmt: skip

# --- Batch and off-peak -------------------------------------------------------------


def _batch(ctx: Context) -> tuple[LeverResult, list[Recommendation]]:
    result = LeverResult(LeverKind.BATCH, "Batch API for batchable features")
    batched = [c for c in ctx.cells if c.service_tier == BATCH]
    standard = _priced_sum(batched, lambda c: ctx.pricer.cost(c, service_tier=STANDARD))
    result.saved = standard - _total(batched)
    movable = [c for c in ctx.cells if c.service_tier != BATCH and _workload(ctx, c) == "batchable"]
    total = _total(ctx.cells)
    result.figures["batchable_share"] = _ratio(_total(movable), total)
    result.figures["batched_share"] = _ratio(_total(batched), total)
    advice = []
    for feature, cells in ctx.by(lambda c: c.feature, movable).items():
        actual = _total(cells)
        at_batch = _priced_sum(cells, lambda c: ctx.pricer.cost(c, service_tier=BATCH))
        monthly = (actual - at_batch) * ctx.monthly
        result.rows.append(
            {
                "feature": feature,
                "not_batched_cost": _micros(actual),
                "at_batch_rates": _micros(at_batch),
                "monthly_saving": _micros(monthly),
            }
        )
        if monthly > 0:
            result.propose(
                advice,
                feature,
                f"Send {feature}'s calls (batchable) through the batch API",
                monthly,
            )
    return result, advice


def _off_peak(ctx: Context) -> tuple[LeverResult, list[Recommendation]]:
    result = LeverResult(LeverKind.OFF_PEAK, "Off-peak hours for models with off-peak prices")
    cards: dict[tuple, RateCard | None] = {}

    def has_off_peak(cell: Cell) -> bool:
        key = (cell.model, cell.provider, cell.region, cell.at)
        if key not in cards:
            cards[key] = ctx.pricer.card(
                model=cell.model, provider=cell.provider, at=cell.at, region=cell.region
            )
        return bool(cards[key] and cards[key].has_off_peak)

    eligible = [c for c in ctx.cells if c.service_tier == STANDARD and has_off_peak(c)]
    shifted = [c for c in eligible if c.rate.off_peak]
    peak_priced = _priced_sum(shifted, lambda c: ctx.pricer.cost(c, off_peak=False))
    result.saved = peak_priced - _total(shifted)
    peak = [c for c in eligible if not c.rate.off_peak]
    result.figures["peak_cost"] = _micros(_total(peak))
    advice = []
    for feature, cells in ctx.by(lambda c: c.feature, peak).items():
        actual = _total(cells)
        moved = _priced_sum(cells, lambda c: ctx.pricer.cost(c, off_peak=True))
        monthly = (actual - moved) * ctx.monthly
        shiftable = getattr(ctx.features.get(feature), "workload", "") == "batchable"
        result.rows.append(
            {
                "feature": feature or None,
                "peak_cost": _micros(actual),
                "at_off_peak_rates": _micros(moved),
                "monthly_saving": _micros(monthly),
                "shiftable": shiftable,
            }
        )
        if shiftable and monthly > 0:
            result.propose(
                advice,
                feature,
                f"Run {feature}'s calls (batchable) in their models' off-peak hours",
                monthly,
            )
    return result, advice


# --- Provisioned throughput ---------------------------------------------------------


def _provisioned(ctx: Context) -> tuple[LeverResult, list[Recommendation]]:
    """Per model with an offer: its steady features' tokens per minute over the window
    against the offer's capacity; the offer breaks even where its monthly price equals
    the on-demand cost of the tokens, at `break_even_utilization` of the units bought."""
    result = LeverResult(LeverKind.PROVISIONED, "Provisioned throughput for steady features")
    currency = settings.FINOPS_DEFAULT_CURRENCY
    offers = {o.model: o for o in ProvisionedOffer.objects.filter(currency=currency)}
    # An offer in another currency cannot be set against the ledger's costs.
    result.figures["offers_in_other_currencies"] = sorted(
        ProvisionedOffer.objects.exclude(currency=currency).values_list("model", flat=True)
    )
    steady = [c for c in ctx.cells if c.model in offers and _workload(ctx, c) == "steady"]
    minutes = MINUTES_PER_MONTH / ctx.monthly
    advice = []
    for model, cells in ctx.by(lambda c: c.model, steady).items():
        offer = offers[model]
        tokens = _total(cells, "input_tokens") + _total(cells, "output_tokens")
        per_minute = Decimal(tokens) / minutes
        units = max(1, math.ceil(per_minute / offer.tokens_per_minute))
        monthly_on_demand = _total(cells) * ctx.monthly
        monthly_offer = offer.monthly_price * units
        utilization = per_minute / (offer.tokens_per_minute * units)
        break_even = utilization * monthly_offer / monthly_on_demand if monthly_on_demand else None
        saving = monthly_on_demand - monthly_offer
        result.rows.append(
            {
                "model": model,
                "tokens_per_minute": _micros(per_minute),
                "units": units,
                "utilization": _ratio(utilization, 1),
                "break_even_utilization": None if break_even is None else _ratio(break_even, 1),
                "monthly_on_demand": _micros(monthly_on_demand),
                "monthly_provisioned": _micros(monthly_offer),
                "monthly_saving": _micros(saving),
            }
        )
        if saving > 0:
            result.propose(
                advice,
                "",
                f"Buy {units} unit(s) of provisioned throughput for {model}: its steady "
                f"features use {_pct(utilization)} of them, above the {_pct(break_even)} "
                "break-even",
                saving,
            )
    return result, advice


# --- Region -------------------------------------------------------------------------


def _region(ctx: Context) -> tuple[LeverResult, list[Recommendation]]:
    result = LeverResult(LeverKind.REGION, "Region")
    result.figures["by_region"] = [
        {"region": region or None, "calls": _total(cells, "calls"), "cost": _micros(_total(cells))}
        for region, cells in ctx.by(lambda c: c.region).items()
    ]
    advice = []
    for feature, cells in ctx.by(lambda c: c.feature).items():
        allowed = list(getattr(ctx.features.get(feature), "allowed_regions", None) or [])
        candidates = allowed or sorted({c.region for c in cells if c.region})
        if not candidates:
            continue
        actual = _total(cells)
        priced = {
            region: _priced_sum(cells, lambda c, r=region: ctx.pricer.cost(c, region=r))
            for region in candidates
        }
        best = min(candidates, key=lambda r: (priced[r], r))
        monthly = (actual - priced[best]) * ctx.monthly
        result.rows.append(
            {
                "feature": feature or None,
                "cost": _micros(actual),
                "cheapest_region": best,
                "cost_there": _micros(priced[best]),
                "monthly_saving": _micros(monthly),
            }
        )
        if monthly > 0:
            result.propose(advice, feature, f"Serve {feature} from {best}", monthly)
    return result, advice


# --- Wasted tokens ------------------------------------------------------------------


def _wasted(ctx: Context) -> tuple[LeverResult, list[Recommendation]]:
    """The input tokens the clients report wasted (`wasted_tokens`: sent, not needed),
    each at its call's uncached input rate: what trimming the prompts would save."""
    result = LeverResult(LeverKind.PROMPT, "Prompt trimming (wasted tokens)")
    advice: list[Recommendation] = []
    wasteful = [c for c in ctx.cells if c.count("wasted_tokens")]
    for feature, cells in ctx.by(lambda c: c.feature, wasteful).items():
        cost = _priced_sum(
            cells,
            lambda c: ctx.pricer.cost(c, tokens=TokenVector(input=c.count("wasted_tokens"),
                                                            output=0)),
        )  # fmt: skip
        share = _ratio(_total(cells, "wasted_tokens"), _total(cells, "input_tokens"))
        monthly = cost * ctx.monthly
        result.rows.append({"feature": feature or None, "wasted_share": share,
                            "wasted_cost": _micros(cost),
                            "monthly_saving": _micros(monthly)})  # fmt: skip
        if monthly > 0 and feature:
            result.propose(
                advice, feature,
                f"Trim {feature}'s prompts: {_pct(share)} of its input tokens are reported wasted",
                monthly,
            )  # fmt: skip
    return result, advice
