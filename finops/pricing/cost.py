"""The cost of a call: its token vector, the rates of its price row, exact arithmetic.

A price row (`ModelPrice`) states the standard tier's base rates in its columns and any
other rate as a `PriceRate` (a service tier, prompts above N tokens, off-peak hours).
`RateCard` finds the rate of every token kind for a call: the row's own rate where it
states one, else the vendor's rule (`rules.py`), else the generic fallback. The
resolution order is spelled out in docs/pricing.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal, Inexact, Rounded, localcontext
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models import ModelPrice, PriceRate, ServiceTier, TokenKind
from .rules import Rules, rules_for, rules_from_json

HUNDRED = Decimal(100)
MILLION = Decimal(1_000_000)
STANDARD = ServiceTier.STANDARD.value
BATCH = ServiceTier.BATCH.value
SERVICE_TIERS: tuple[str, ...] = tuple(ServiceTier.values)
# The one vocabulary of token kinds. A priced kind (`TokenKind`, and `query`, the unit of
# rerank and search models) has its own rate and, in the ledger, its own count column;
# the ledger also counts grounding and wasted tokens, which are billed within input and
# carry no rate of their own. TOKEN_KINDS is the order statements list the kinds in;
# TOKEN_COLUMNS the order the ledger's counts are stored and summed in.
TOKEN_KINDS: tuple[str, ...] = (*TokenKind.values, "query")
TOKEN_KIND_LABELS: dict[str, str] = {**dict(TokenKind.choices), "query": "queries"}
KIND_COLUMNS: dict[str, str] = {
    **{kind: f"{kind}_tokens" for kind in TokenKind.values},
    "query": "queries",
}
TOKEN_COLUMNS: tuple[str, ...] = (
    *(KIND_COLUMNS[kind] for kind in TokenKind.values),
    "grounding_tokens",
    "wasted_tokens",
    "queries",
)

# The kinds a row states in its columns (the standard tier's base rates).
BASE_COLUMNS = {
    "input": "input_per_million",
    "cached_input": "cached_input_per_million",
    "cache_write": "cache_write_per_million",
    "cache_write_1h": "cache_write_1h_per_million",
    "output": "output_per_million",
    "reasoning": "reasoning_per_million",
}
# Where a row and the rules state no rate for a kind: the kind it is billed as.
_GENERIC_FALLBACK = {
    "cached_input": "input",
    "cache_write": "input",
    "cache_write_1h": "cache_write",
    "reasoning": "output",
}


class Usage(Protocol):
    """Anything with a token vector: a posted event or a stored one."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class TokenVector:
    """Tokens of one call. `cached_input` and `cache_write` are parts of `input`,
    `cache_write_1h` of `cache_write`, `reasoning` of `output`."""

    input: int
    output: int
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0
    queries: int = 0

    @classmethod
    def of(cls, usage: Usage | Any) -> TokenVector:
        return cls(
            input=usage.input_tokens,
            output=usage.output_tokens,
            cached_input=usage.cached_input_tokens,
            cache_write=usage.cache_write_tokens,
            reasoning=usage.reasoning_tokens,
            cache_write_1h=getattr(usage, "cache_write_1h_tokens", 0),
            queries=getattr(usage, "queries", 0),
        )

    @property
    def uncached_input(self) -> int:
        return self.input - self.cached_input - self.cache_write

    @property
    def non_reasoning_output(self) -> int:
        return self.output - self.reasoning

    def quantities(self) -> dict[str, int]:
        """Units billed at each kind's rate (the parts never overlap)."""
        return {
            "input": self.uncached_input,
            "cached_input": self.cached_input,
            "cache_write": self.cache_write - self.cache_write_1h,
            "cache_write_1h": self.cache_write_1h,
            "output": self.non_reasoning_output,
            "reasoning": self.reasoning,
            "query": self.queries,
        }


@dataclass(frozen=True, slots=True)
class RateClass:
    """Which of a row's rates a call is billed at: its service tier, the long-context
    threshold its prompt is above (0: none), and whether it ran off-peak."""

    service_tier: str = STANDARD
    above_tokens: int = 0
    off_peak: bool = False

    def label(self) -> str:
        parts = [] if self.service_tier == STANDARD else [self.service_tier]
        if self.above_tokens:
            parts.append(f"above {_tokens_label(self.above_tokens)}")
        if self.off_peak:
            parts.append("off-peak")
        return ", ".join(parts)


def _tokens_label(tokens: int) -> str:
    return f"{tokens // 1000}k" if tokens % 1000 == 0 else str(tokens)


def effective_service_tier(usage: Any) -> str:
    """`batch: true` is the batch tier."""
    tier = getattr(usage, "service_tier", STANDARD) or STANDARD
    return BATCH if getattr(usage, "batch", False) and tier == STANDARD else tier


# --- Off-peak windows -------------------------------------------------------------------


def _clock(text: str) -> time:
    hours, minutes = text.strip().split(":")
    return time(int(hours) % 24, int(minutes))


@dataclass(frozen=True, slots=True)
class OffPeakWindow:
    """UTC hours (`start` inclusive, `end` exclusive; a window may wrap past midnight and
    one whose start equals its end is the whole day) on ISO weekdays (empty: every day)."""

    start: time
    end: time
    weekdays: frozenset[int] = frozenset()
    weekday_zone: str = ""  # the calendar the weekdays are read in (default UTC)

    def contains(self, at: datetime) -> bool:
        at = at.astimezone(UTC)
        if self.weekdays:
            local = at.astimezone(ZoneInfo(self.weekday_zone)) if self.weekday_zone else at
            if local.isoweekday() not in self.weekdays:
                return False
        now = at.time()
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


def parse_off_peak_windows(value: Any) -> list[OffPeakWindow]:
    """LiteLLM's `off_peak_pricing` windows: `hours_utc` every day, or `windows` entries
    of `hours_utc` (a "HH:MM-HH:MM" string or a list of them) and ISO `weekdays`.
    Raises ValueError on anything else, so a bad window is never silently ignored."""
    if not value:
        return []
    zone, rules = _off_peak_rules(value)
    return [window for rule in rules for window in _off_peak_rule_windows(rule, zone)]


def _off_peak_rules(value: Any) -> tuple[str, list[Any]]:
    """The weekday time zone and the window entries of an `off_peak_pricing` value."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "", list(value)
    if not isinstance(value, Mapping):
        raise ValueError("off-peak windows must be a list of {hours_utc, weekdays}")
    zone = value.get("weekday_timezone") or ""
    if zone:
        try:
            ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown weekday_timezone {zone!r}") from None
    rules: list[Any] = [{"hours_utc": value["hours_utc"]}] if value.get("hours_utc") else []
    return zone, [*rules, *(value.get("windows") or [])]


def _off_peak_rule_windows(rule: Any, zone: str) -> list[OffPeakWindow]:
    if not isinstance(rule, Mapping):
        raise ValueError("an off-peak window must be an object")
    hours = rule.get("hours_utc")
    spans = [hours] if isinstance(hours, str) else list(hours or [])
    weekdays = rule.get("weekdays") or []
    if any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 7 for d in weekdays):
        raise ValueError("weekdays are ISO numbers, 1 (Monday) to 7 (Sunday)")
    return [_off_peak_window(span, frozenset(weekdays), zone) for span in spans]


def _off_peak_window(span: Any, weekdays: frozenset[int], zone: str) -> OffPeakWindow:
    malformed = ValueError(f"hours_utc {span!r} is not 'HH:MM-HH:MM'")
    if not isinstance(span, str) or span.count("-") != 1:
        raise malformed
    start, end = span.split("-")
    try:
        return OffPeakWindow(_clock(start), _clock(end), weekdays, zone)
    except ValueError:
        raise malformed from None


# --- Rates ------------------------------------------------------------------------------

RateKey = tuple[str, str, int, bool]  # service tier, token kind, above tokens, off-peak


class RateCard:
    """Every rate of one price row, with the vendor's rules for the rates it lacks."""

    def __init__(self, price: ModelPrice, rates: Iterable[PriceRate]) -> None:
        self.price = price
        frozen = price.rules
        self.legacy = bool(frozen and frozen.get("legacy"))
        self.rules: Rules = (
            rules_for(price.provider, price.model) if frozen is None else rules_from_json(frozen)
        )
        explicit: dict[RateKey, Decimal] = {}
        for kind, column in BASE_COLUMNS.items():
            value = getattr(price, column)
            if value is not None:
                explicit[(STANDARD, kind, 0, False)] = value
        for rate in rates:
            key = (rate.service_tier, rate.token_kind, rate.above_tokens, rate.off_peak)
            explicit[key] = rate.per_million
        self.explicit = explicit
        self.bands = sorted({key[2] for key in explicit if not key[3]}, reverse=True)
        if self.legacy:  # no long prompts, no off-peak hours
            self.bands = [0]
        self.windows = parse_off_peak_windows(price.off_peak_windows)
        self.has_off_peak = any(key[3] for key in explicit)
        self._units: dict[RateClass, dict[str, Decimal]] = {}

    @classmethod
    def of(cls, price: ModelPrice) -> RateCard:
        """The card of a row, built once per row object (rates prefetched or read)."""
        card = getattr(price, "_rate_card", None)
        if card is None:
            card = cls(price, price.rates.all() if price.pk else ())
            price._rate_card = card  # type: ignore[attr-defined]
        return card

    def can_price(self, tokens: TokenVector) -> bool:
        return not tokens.queries or self.price.per_query is not None

    def rate_class(self, *, tokens: TokenVector, service_tier: str, at: datetime) -> RateClass:
        prompt = tokens.input
        inclusive = self.rules.inclusive_threshold
        above = next(
            (b for b in self.bands if b == 0 or prompt > b or (inclusive and prompt == b)), 0
        )
        off_peak = (
            service_tier == STANDARD
            and self.has_off_peak
            and any(window.contains(at) for window in self.windows)
        )
        return RateClass(service_tier, above, off_peak)

    def unit_prices(self, rate_class: RateClass) -> dict[str, Decimal]:
        """Per-1M rate of every kind for the class (`query`: per 1M queries)."""
        units = self._units.get(rate_class)
        if units is None:
            with localcontext() as ctx:
                ctx.prec = 60
                ctx.traps[Inexact] = True
                ctx.traps[Rounded] = True
                units = {
                    kind: self._rate(
                        rate_class.service_tier, kind, rate_class.above_tokens, rate_class.off_peak
                    )
                    for kind in BASE_COLUMNS
                }
                per_query = self.price.per_query
                units["query"] = per_query * MILLION if per_query is not None else Decimal(0)
            self._units[rate_class] = units
        return units

    def _rate(self, tier: str, kind: str, band: int, off_peak: bool) -> Decimal:
        if self.legacy:
            return self._legacy_rate(tier, kind)
        if tier != STANDARD:
            return self._tier_rate(tier, kind, band)
        layers = [(kind, band, True)] if off_peak else []
        layers.append((kind, band, False))
        if band:
            layers.append((kind, 0, False))
        for layer_kind, layer_band, layer_off_peak in layers:
            own = self.explicit.get((STANDARD, layer_kind, layer_band, layer_off_peak))
            if own is not None:
                return own
        base, multiple = self._billed_as(kind)
        return self._rate(STANDARD, base, band, off_peak) * multiple

    def _legacy_rate(self, tier: str, kind: str) -> Decimal:
        """A row from before service tiers, priced as it billed: missing cached and write
        rates are the input rate, reasoning the output rate; batch is the row's own batch
        rate, else its discount of the standard rate, else the standard rate; batch
        reasoning without a reasoning rate is the batch output rate. No other tier."""
        if tier != BATCH:
            own = self.explicit.get((STANDARD, kind, 0, False))
            return own if own is not None else self._legacy_rate(STANDARD, _GENERIC_FALLBACK[kind])
        if kind == "reasoning" and (STANDARD, "reasoning", 0, False) not in self.explicit:
            return self._legacy_rate(BATCH, "output")
        own = self.explicit.get((BATCH, kind, 0, False))
        if own is not None:
            return own
        standard = self._legacy_rate(STANDARD, kind)
        discount = self.price.batch_discount_percent
        return standard if discount is None else standard * (HUNDRED - discount) / HUNDRED

    def _billed_as(self, kind: str) -> tuple[str, Decimal]:
        """The kind a kind without a rate of its own is billed as, and at what multiple:
        the vendor's rule, else the generic fallback."""
        rule = self.rules.kinds.get(kind)
        if rule is not None:
            return rule[0], rule[1]
        return _GENERIC_FALLBACK[kind], Decimal(1)

    def _tier_rate(self, tier: str, kind: str, band: int) -> Decimal:
        own = self.explicit.get((tier, kind, band, False))
        if own is not None:
            return own
        if kind == "reasoning":
            # Reasoning is output: a tier that prices its output prices its reasoning
            # (Gemini's flex and priority rows state no reasoning rate of their own).
            output = self.explicit.get((tier, "output", band, False))
            if output is not None:
                return output
        stated = any((STANDARD, kind, b, False) in self.explicit for b in {0, band})
        if not stated:
            # Billed as another kind (reasoning as output): at that kind's tier rate.
            base, multiple = self._billed_as(kind)
            return self._tier_rate(tier, base, band) * multiple
        return self._rate(STANDARD, kind, band, False) * self._tier_multiple(tier)

    def _tier_multiple(self, tier: str) -> Decimal:
        """A tier's rate as a multiple of the standard one, where the row states none:
        the row's own batch discount, the vendor's rule, the ratio the row's own batch
        input and output rates share, or 1 (no rule: the standard rate)."""
        if tier == BATCH and self.price.batch_discount_percent is not None:
            return (HUNDRED - self.price.batch_discount_percent) / HUNDRED
        rule = self.rules.tiers.get(tier)
        if rule is not None:
            return rule[0]
        if tier == BATCH:
            ratios = set()
            for kind in ("input", "output"):
                own = self.explicit.get((BATCH, kind, 0, False))
                standard = self.explicit[(STANDARD, kind, 0, False)]
                if own is None or not standard:
                    return Decimal(1)
                try:
                    ratios.add(own / standard)
                except (Inexact, Rounded):  # no exact ratio: not a discount to apply
                    return Decimal(1)
            if len(ratios) == 1:
                return ratios.pop()
        return Decimal(1)

    def cost(self, tokens: TokenVector, rate_class: RateClass) -> Decimal:
        """The exact cost; `Inexact` trapped, so a result that cannot be exact raises
        instead of being rounded silently."""
        units = self.unit_prices(rate_class)
        with localcontext() as ctx:
            ctx.prec = 60
            ctx.traps[Inexact] = True
            ctx.traps[Rounded] = True
            total = sum(
                (
                    quantity * units[kind]
                    for kind, quantity in tokens.quantities().items()
                    if quantity
                ),
                Decimal(0),
            )
            return total.scaleb(-6)


@dataclass(frozen=True, slots=True)
class Priced:
    cost: Decimal
    rate_class: RateClass


def price_tokens(
    *, card: RateCard, tokens: TokenVector, service_tier: str, at: datetime
) -> Priced | None:
    """The cost of a call under a card; None when the card cannot price it (queries on a
    row without a per-query price)."""
    if not card.can_price(tokens):
        return None
    rate_class = card.rate_class(tokens=tokens, service_tier=service_tier, at=at)
    return Priced(card.cost(tokens, rate_class), rate_class)


def usage_priced(*, usage: Any, price: ModelPrice | RateCard) -> Priced | None:
    """The cost of a posted or stored event under a price row (at the event's time)."""
    card = price if isinstance(price, RateCard) else RateCard.of(price)
    return price_tokens(
        card=card,
        tokens=TokenVector.of(usage),
        service_tier=effective_service_tier(usage),
        at=usage.timestamp,
    )


def token_cost(
    *,
    tokens: TokenVector,
    price: ModelPrice | RateCard,
    service_tier: str = STANDARD,
    at: datetime | None = None,
    rate_class: RateClass | None = None,
) -> Decimal:
    """The exact cost of a token vector (counterfactual pricing: any row, tier, time).
    `rate_class` fixes the rates, for a vector that sums many calls (whose total prompt
    says nothing of any one call's size)."""
    card = price if isinstance(price, RateCard) else RateCard.of(price)
    if rate_class is None:
        at = at or datetime.now(UTC)
        rate_class = card.rate_class(tokens=tokens, service_tier=service_tier, at=at)
    return card.cost(tokens, rate_class)
