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

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from billing.selectors import lever_groups
from finops.models import Tenant
from finops.pricing import PriceBook, RateCard, RateClass, TokenVector
from ingestion.models import Feature

from .models import Lever as LeverKind
from .models import ProvisionedOffer

_MICROS = Decimal("0.000001")
_RATIO = Decimal("0.0001")
DAYS_PER_MONTH = Decimal(30)
MINUTES_PER_MONTH = 30 * 24 * 60
BATCH = "batch"
STANDARD = "standard"
QUALITY_CAVEAT = (
    "A semantic cache answers a near-duplicate prompt with a stored answer: check the "
    "answers' quality on a sample before serving them."
)


def _micros(value: Decimal) -> Decimal:
    return value.quantize(_MICROS, rounding=ROUND_HALF_UP)


def _ratio(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_RATIO, rounding=ROUND_HALF_UP)


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value


# --- The groups ---------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    """One rollup group: a day's calls of one feature, model, provider, region, service
    tier, rate class and routing tier."""

    at: datetime
    feature: str
    model: str
    provider: str
    region: str
    service_tier: str
    rate: RateClass
    routing_tier: str
    calls: int
    tokens: TokenVector
    cost: Decimal
    sums: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> Cell:
        return cls(
            at=row["period_start"].astimezone(UTC),
            feature=row["feature"],
            model=row["model"],
            provider=row["provider"],
            region=row["region"],
            service_tier=row["service_tier"],
            rate=RateClass(row["service_tier"], row["above_tokens"], row["off_peak"]),
            routing_tier=row["routing_tier"],
            calls=row["calls"],
            tokens=TokenVector(
                input=row["input_tokens"],
                output=row["output_tokens"],
                cached_input=row["cached_input_tokens"],
                cache_write=row["cache_write_tokens"],
                cache_write_1h=row["cache_write_1h_tokens"],
                reasoning=row["reasoning_tokens"],
                queries=row["queries"],
            ),
            cost=Decimal(row["cost"]),
            sums=row,
        )

    def count(self, name: str) -> int:
        return self.sums[name] or 0

    def money(self, name: str) -> Decimal:
        return Decimal(self.sums[name] or 0)


class Pricer:
    """Prices a cell again with one thing changed, from one price book."""

    def __init__(
        self, cells: Iterable[Cell], models: Iterable[str] = (), regions: Iterable[str] = ()
    ) -> None:
        cells = list(cells)
        self.book = PriceBook.for_models(
            {c.model for c in cells} | set(models),
            {c.provider for c in cells},
            {c.region for c in cells} | set(regions),
        )

    def card(self, *, model: str, provider: str, at: datetime, region: str = "") -> RateCard | None:
        """The row the bill would price the call with (`PriceBook.find`)."""
        return self.book.find(model=model, provider=provider, at=at, region=region)

    def cost(
        self,
        cell: Cell,
        *,
        model: str | None = None,
        service_tier: str | None = None,
        off_peak: bool | None = None,
        region: str | None = None,
        tokens: TokenVector | None = None,
    ) -> Decimal | None:
        """The cell's cost with the changes given; None when no row prices it."""
        same_model = model is None or model == cell.model
        card = self.card(
            model=cell.model if same_model else model,
            provider=cell.provider if same_model else "",
            at=cell.at,
            region=cell.region if region is None else region,
        )
        tokens = tokens or cell.tokens
        if card is None or not card.can_price(tokens):
            return None
        tier = service_tier or cell.service_tier
        band = cell.rate.above_tokens if same_model else _band(card, cell)
        peak = cell.rate.off_peak if off_peak is None else off_peak
        peak = peak and tier == STANDARD and card.has_off_peak
        return card.cost(tokens, RateClass(tier, band, peak))


def _band(card: RateCard, cell: Cell) -> int:
    """The long-context band of the cell's mean prompt on another model's card."""
    mean = TokenVector(input=cell.tokens.input // max(cell.calls, 1), output=0)
    return card.rate_class(tokens=mean, service_tier=STANDARD, at=cell.at).above_tokens


# --- Results ------------------------------------------------------------------------


@dataclass(slots=True)
class Recommendation:
    lever: str
    feature: str
    text: str
    monthly_saving: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "lever": str(self.lever),
            "feature": self.feature or None,
            "text": self.text,
            "monthly_saving": str(_micros(self.monthly_saving)),
        }


@dataclass(slots=True)
class LeverResult:
    """One lever: `saved` is what it saved in the window (what is in place against the
    counterfactual), `potential` what it would save more per month, `rows` the detail."""

    lever: str
    label: str
    saved: Decimal = Decimal(0)
    potential_monthly: Decimal = Decimal(0)
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def propose(
        self, advice: list[Recommendation], feature: str, text: str, monthly: Decimal
    ) -> None:
        """Count a monthly saving as the lever's potential and recommend it."""
        self.potential_monthly += monthly
        advice.append(Recommendation(self.lever, feature, text, monthly))

    def as_json(self) -> dict[str, Any]:
        return {
            "lever": str(self.lever),
            "label": self.label,
            "saved": str(_micros(self.saved)),
            "potential_monthly_saving": str(_micros(self.potential_monthly)),
            **_text(self.figures),
            "rows": _text(self.rows),
        }


@dataclass(slots=True)
class Savings:
    start: datetime
    end: datetime
    tenant: Tenant | None
    cost: Decimal
    calls: int
    unpriced_calls: int
    # The groups with an unpriced call, left out whole: their calls, and the cost of
    # those of them that are priced.
    calls_left_out: int
    cost_left_out: Decimal
    levers: list[LeverResult]
    recommendations: list[Recommendation]

    def lever(self, name: str) -> LeverResult:
        return next(result for result in self.levers if result.lever == name)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "tenant": self.tenant.slug if self.tenant else None,
            "cost": str(_micros(self.cost)),
            "calls": self.calls,
            "unpriced_calls": self.unpriced_calls,
            "calls_left_out": self.calls_left_out,
            "cost_left_out": str(_micros(self.cost_left_out)),
            "levers": [lever.as_json() for lever in self.levers],
            "recommendations": [r.as_json() for r in self.recommendations],
        }


@dataclass(slots=True)
class Context:
    cells: list[Cell]
    pricer: Pricer
    features: dict[str, Any]
    monthly: Decimal  # the factor from the window to a month

    def by(self, key: Callable[[Cell], Any], cells: Iterable[Cell] | None = None) -> dict:
        out: dict[Any, list[Cell]] = defaultdict(list)
        for cell in self.cells if cells is None else cells:
            out[key(cell)].append(cell)
        return dict(sorted(out.items(), key=lambda item: str(item[0])))


def _total(cells: Iterable[Cell], name: str = "cost") -> Any:
    cells = list(cells)
    if name == "cost":
        return sum((c.cost for c in cells), Decimal(0))
    if name in ("outcome_cost", "cache_hit_cost"):
        return sum((c.money(name) for c in cells), Decimal(0))
    if name == "calls":
        return sum(c.calls for c in cells)
    return sum(c.count(name) for c in cells)


def _priced_sum(cells: Iterable[Cell], price: Callable[[Cell], Decimal | None]) -> Decimal | None:
    """The counterfactual of the cells, each priced by `price` (None: a cell no row
    prices, whose actual cost stands in)."""
    total = Decimal(0)
    for cell in cells:
        value = price(cell)
        total += cell.cost if value is None else value
    return total


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


def _per(amount: Decimal, count: int) -> Decimal | None:
    return _micros(amount / count) if count else None


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


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


# --- Batch and off-peak -------------------------------------------------------------


def _workload(ctx: Context, cell: Cell) -> str:
    return getattr(ctx.features.get(cell.feature), "workload", "")


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
