"""The levers on how calls are answered: routing against each feature's default model,
the provider's prompt cache, the application's cache and a semantic cache's
break-even."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from django.conf import settings

from finops.pricing import TokenVector

from ..models import Lever as LeverKind
from .groups import (
    QUALITY_CAVEAT,
    Context,
    LeverResult,
    Recommendation,
    _micros,
    _pct,
    _per,
    _priced_sum,
    _ratio,
    _total,
)  # fmt: skip

# --- Routing ------------------------------------------------------------------------


def _routing(ctx: Context) -> LeverResult:
    result = LeverResult(LeverKind.ROUTING, "Model routing against each feature's default model")
    for feature, cells in ctx.by(lambda c: c.feature).items():
        default = getattr(ctx.features.get(feature), "default_model", "")
        if not default:
            continue
        actual = _total(cells)
        single = _priced_sum(cells, lambda c, m=default: ctx.pricer.cost(c, model=m))
        saved = single - actual
        result.saved += saved
        result.rows.append(
            {
                "feature": feature,
                "default_model": default,
                "actual": _micros(actual),
                "all_on_default_model": _micros(single),
                "saved": _micros(saved),
            }
        )
    calls = _total(ctx.cells, "calls")
    result.figures["routing_tiers"] = [
        {
            "routing_tier": tier or None,
            "calls": _total(cells, "calls"),
            "call_share": _ratio(_total(cells, "calls"), calls),
            "cost": _micros(_total(cells)),
            "escalation_rate": _ratio(_total(cells, "escalated_calls"), _total(cells, "calls")),
        }
        for tier, cells in ctx.by(lambda c: c.routing_tier).items()
    ]
    result.figures["quality"] = [
        {
            "model": model,
            "correct_outputs": _total(cells, "correct_calls"),
            "accuracy": _ratio(_total(cells, "correct_calls"), _total(cells, "outcome_calls")),
            "cost_per_correct_output": _per(
                _total(cells, "outcome_cost"), _total(cells, "correct_calls")
            ),
        }
        for model, cells in ctx.by(lambda c: c.model).items()
        if _total(cells, "outcome_calls")
    ]
    return result


# --- Caches -------------------------------------------------------------------------


def _uncached(tokens: TokenVector) -> TokenVector:
    return replace(tokens, cached_input=0, cache_write=0, cache_write_1h=0)


def _provider_cache(ctx: Context) -> LeverResult:
    result = LeverResult(LeverKind.PROVIDER_CACHE, "Provider prompt caching")
    cached = [c for c in ctx.cells if c.tokens.cached_input or c.tokens.cache_write]
    for key, cells in ctx.by(lambda c: (c.feature, c.model), cached).items():
        actual = _total(cells)
        without = _priced_sum(cells, lambda c: ctx.pricer.cost(c, tokens=_uncached(c.tokens)))
        saved = without - actual
        result.saved += saved
        result.rows.append(
            {
                "feature": key[0] or None,
                "model": key[1],
                "hit_rate": _ratio(
                    _total(cells, "cached_input_tokens"), _total(cells, "input_tokens")
                ),
                "actual": _micros(actual),
                "without_cache": _micros(without),
                "saved": _micros(saved),
            }
        )
    result.figures["hit_rate"] = _ratio(
        _total(ctx.cells, "cached_input_tokens"), _total(ctx.cells, "input_tokens")
    )
    return result


def _app_cache(ctx: Context) -> LeverResult:
    result = LeverResult(LeverKind.APP_CACHE, "Application cache (cache_hit)")
    for feature, cells in ctx.by(lambda c: c.feature).items():
        known, hits = _total(cells, "cache_known_calls"), _total(cells, "cache_hit_calls")
        if not known:
            continue
        misses = _total(cells, "calls") - hits
        miss_cost = _total(cells) - _total(cells, "cache_hit_cost")
        avoided = miss_cost * hits / misses if misses else Decimal(0)
        result.saved += avoided
        result.rows.append(
            {
                "feature": feature or None,
                "calls_reporting": known,
                "hits": hits,
                "hit_rate": _ratio(hits, known),
                "avoided": _micros(avoided),
            }
        )
    result.figures["hit_rate"] = _ratio(
        _total(ctx.cells, "cache_hit_calls"), _total(ctx.cells, "cache_known_calls")
    )
    return result


def _semantic_cache(ctx: Context) -> tuple[LeverResult, list[Recommendation]]:
    """Where no application cache runs: the repeat rate as the expected hit rate, the
    break-even rate that pays the cache's own monthly cost, the net monthly saving."""
    cache_cost = Decimal(settings.FINOPS_SEMANTIC_CACHE_MONTHLY_COST)
    result = LeverResult("semantic_cache", "Semantic cache: expected hit rate against break-even")
    result.figures["cache_monthly_cost"] = cache_cost
    advice = []
    for feature, cells in ctx.by(lambda c: c.feature).items():
        hashed = _total(cells, "hashed_calls")
        if not feature or not hashed or _total(cells, "cache_known_calls"):
            continue
        monthly = _total(cells) * ctx.monthly
        expected = Decimal(_total(cells, "repeat_calls")) / hashed
        break_even = cache_cost / monthly if monthly else None
        net = expected * monthly - cache_cost
        pays = break_even is not None and expected > break_even
        result.rows.append(
            {
                "feature": feature,
                "expected_hit_rate": _ratio(expected, 1),
                "break_even_hit_rate": None if break_even is None else _ratio(break_even, 1),
                "monthly_cost": _micros(monthly),
                "net_monthly_saving": _micros(net),
                "recommended": pays,
            }
        )
        if pays:
            result.propose(
                advice,
                feature,
                f"Cache {feature}'s answers: {_pct(expected)} of its prompts repeat within the "
                f"day, above the {_pct(break_even)} the cache needs to pay for itself. "
                + QUALITY_CAVEAT,
                net,
            )
    result.figures["quality_caveat"] = QUALITY_CAVEAT
    return result, advice
