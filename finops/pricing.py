"""Pricing: the cost of a token vector under a price row, price lookup, price imports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, Inexact, Rounded, localcontext
from pathlib import Path
from typing import Any, Protocol

from django.db import transaction

from .models import BEGINNING_OF_TIME, ModelPrice
from .money import per_token_to_per_million

HUNDRED = Decimal(100)


class Usage(Protocol):
    """Anything with a token vector: a posted event or a stored one."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    batch: bool


@dataclass(frozen=True, slots=True)
class TokenVector:
    """Tokens of one call. `cached_input` and `cache_write` are parts of `input`,
    `reasoning` is part of `output`."""

    input: int
    output: int
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, usage: Usage) -> TokenVector:
        return cls(
            input=usage.input_tokens,
            output=usage.output_tokens,
            cached_input=usage.cached_input_tokens,
            cache_write=usage.cache_write_tokens,
            reasoning=usage.reasoning_tokens,
        )

    @property
    def uncached_input(self) -> int:
        return self.input - self.cached_input - self.cache_write

    @property
    def non_reasoning_output(self) -> int:
        return self.output - self.reasoning


def _discounted(price: Decimal, discount_percent: Decimal | None) -> Decimal:
    if discount_percent is None:
        return price
    return price * (HUNDRED - discount_percent) / HUNDRED


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Per-1M prices for each token kind, fallbacks already applied."""

    uncached_input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal

    @classmethod
    def of(cls, price: ModelPrice, *, batch: bool) -> UnitPrices:
        input_ = price.input_per_million
        output = price.output_per_million
        cached = price.cached_input_per_million
        cached = input_ if cached is None else cached
        cache_write = price.cache_write_per_million
        cache_write = input_ if cache_write is None else cache_write
        reasoning = price.reasoning_per_million
        reasoning = output if reasoning is None else reasoning
        if not batch:
            return cls(input_, cached, cache_write, output, reasoning)
        d = price.batch_discount_percent
        b_output = price.batch_output_per_million
        b_output = _discounted(output, d) if b_output is None else b_output
        b_input = price.batch_input_per_million
        b_cached = price.batch_cached_input_per_million
        b_cache_write = price.batch_cache_write_per_million
        own_reasoning = price.reasoning_per_million
        return cls(
            uncached_input=_discounted(input_, d) if b_input is None else b_input,
            cached_input=_discounted(cached, d) if b_cached is None else b_cached,
            cache_write=_discounted(cache_write, d) if b_cache_write is None else b_cache_write,
            output=b_output,
            reasoning=b_output if own_reasoning is None else _discounted(own_reasoning, d),
        )


def token_cost(*, tokens: TokenVector, price: ModelPrice, batch: bool = False) -> Decimal:
    """The exact cost of one call: each token kind at its own price, never rounded.

    Arithmetic runs with `Inexact` trapped, so a result that cannot be exact raises
    instead of being rounded silently.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.traps[Inexact] = True
        ctx.traps[Rounded] = True
        unit = UnitPrices.of(price, batch=batch)
        total = (
            tokens.uncached_input * unit.uncached_input
            + tokens.cached_input * unit.cached_input
            + tokens.cache_write * unit.cache_write
            + tokens.non_reasoning_output * unit.output
            + tokens.reasoning * unit.reasoning
        )
        return total.scaleb(-6)


def usage_cost(*, usage: Usage, price: ModelPrice) -> Decimal:
    """The exact cost of a posted or stored event under `price`."""
    return token_cost(tokens=TokenVector.of(usage), price=price, batch=usage.batch)


class PriceBook:
    """The price rows of a set of models, loaded once, for pricing many events."""

    def __init__(self, rows: Iterable[ModelPrice]) -> None:
        self._rows: dict[str, list[ModelPrice]] = {}
        for row in rows:
            self._rows.setdefault(row.model, []).append(row)
        for history in self._rows.values():
            history.sort(key=lambda r: r.effective_from, reverse=True)

    @classmethod
    def for_models(cls, models: Iterable[str], providers: Iterable[str] = ()) -> PriceBook:
        names = set(models)
        names |= {f"{p}/{m}" for m in models for p in providers if p and "/" not in m}
        return cls(ModelPrice.objects.filter(model__in=names))

    def has(self, *, model: str, provider: str) -> bool:
        """Whether the model has any price row, in force or still to come."""
        return model in self._rows or (bool(provider) and f"{provider}/{model}" in self._rows)

    def find(self, *, model: str, provider: str, at: datetime) -> ModelPrice | None:
        """The row in force at `at`: the exact model name first, then `provider/model`."""
        for name in (model, f"{provider}/{model}" if provider else None):
            if name is None:
                continue
            for row in self._rows.get(name, ()):
                if row.effective_from <= at:
                    return row
        return None


# --- LiteLLM price map -------------------------------------------------------------

DEFAULT_PRICE_FILE = Path(__file__).resolve().parent / "data" / "default_prices.json"

TOKEN_PRICED_MODES = {"chat", "completion", "responses"}

_LITELLM_FIELDS = {
    "input_cost_per_token": "input_per_million",
    "output_cost_per_token": "output_per_million",
    "cache_read_input_token_cost": "cached_input_per_million",
    "cache_creation_input_token_cost": "cache_write_per_million",
    "output_cost_per_reasoning_token": "reasoning_per_million",
    "input_cost_per_token_batches": "batch_input_per_million",
    "output_cost_per_token_batches": "batch_output_per_million",
    "cache_read_input_token_cost_batches": "batch_cached_input_per_million",
    "cache_creation_input_token_cost_batches": "batch_cache_write_per_million",
}
PRICE_DECIMAL_PLACES = ModelPrice._meta.get_field("input_per_million").decimal_places
PRICE_FIELDS = tuple(_LITELLM_FIELDS.values()) + ("batch_discount_percent",)


@dataclass(slots=True)
class ParsedPrices:
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, str):
        try:
            value = Decimal(value)
        except ArithmeticError:
            return None
    if isinstance(value, Decimal):
        # NaN and Infinity are no price.
        return value if value.is_finite() else None
    # A float here means the file was read without parse_float=Decimal.
    raise TypeError(f"price {value!r} is a {type(value).__name__}, expected Decimal")


def parse_litellm_prices(data: Mapping[str, Any]) -> ParsedPrices:
    """Map LiteLLM's `model_prices_and_context_window` entries to price fields.

    Every entry is either taken or skipped with a reason: only token-priced modes
    (chat, completion, responses) with an input and an output price per token are ours;
    embeddings, images, audio and per-second models are not.
    """
    parsed = ParsedPrices()
    for name, entry in data.items():
        if name == "sample_spec":
            parsed.skipped[name] = "documentation entry, not a model"
            continue
        if not isinstance(entry, Mapping):
            parsed.skipped[name] = "not a price entry"
            continue
        mode = entry.get("mode")
        if mode not in TOKEN_PRICED_MODES:
            parsed.skipped[name] = f"mode {mode!r} is not priced per token"
            continue
        fields: dict[str, Any] = {}
        for src, dst in _LITELLM_FIELDS.items():
            value = _as_decimal(entry.get(src))
            if value is not None:
                fields[dst] = per_token_to_per_million(value)
        if "input_per_million" not in fields or "output_per_million" not in fields:
            parsed.skipped[name] = "no input and output price per token"
            continue
        if any(v < 0 for v in fields.values()):
            parsed.skipped[name] = "negative price"
            continue
        if any(v.as_tuple().exponent < -PRICE_DECIMAL_PLACES for v in fields.values()):
            parsed.skipped[name] = f"price finer than 1e-{PRICE_DECIMAL_PLACES} per 1M tokens"
            continue
        if len(name) > ModelPrice._meta.get_field("model").max_length:
            parsed.skipped[name] = "model name too long"
            continue
        fields["provider"] = str(entry.get("litellm_provider") or "")[:100]
        parsed.prices[name] = fields
    return parsed


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_price_file(content: bytes | str) -> Any:
    """A price file's JSON with every number exact (Decimal, never float)."""
    return json.loads(content, parse_float=Decimal, parse_constant=_no_constants)


def load_price_file(path: Path | str) -> Mapping[str, Any]:
    with open(path, "rb") as fh:
        return parse_price_file(fh.read())


@dataclass(slots=True)
class PriceImportResult:
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def new_rows(self) -> int:
        return self.created + self.changed


def _same_prices(row: ModelPrice, fields: Mapping[str, Any]) -> bool:
    return all(getattr(row, name) == fields.get(name) for name in PRICE_FIELDS)


def prices_import(
    *, data: Mapping[str, Any], effective_from: datetime, source: str = "litellm"
) -> PriceImportResult:
    """Import a LiteLLM price map.

    A model's first price applies to all time; a changed price becomes a new row from
    `effective_from`; an unchanged price adds nothing. Rows are never edited.
    """
    parsed = parse_litellm_prices(data)
    result = PriceImportResult(skipped=parsed.skipped)
    latest: dict[str, ModelPrice] = {}
    for row in ModelPrice.objects.filter(model__in=parsed.prices.keys()).order_by(
        "model", "effective_from"
    ):
        latest[row.model] = row
    new_rows: list[ModelPrice] = []
    for name, fields in parsed.prices.items():
        current = latest.get(name)
        if current is None:
            new_rows.append(
                ModelPrice(model=name, effective_from=BEGINNING_OF_TIME, source=source, **fields)
            )
            result.created += 1
        elif _same_prices(current, fields):
            result.unchanged += 1
        elif current.effective_from >= effective_from:
            result.skipped[name] = (
                f"price changed, but a row already starts at {current.effective_from:%Y-%m-%d}"
                " (at or after --effective-from)"
            )
        else:
            new_rows.append(
                ModelPrice(model=name, effective_from=effective_from, source=source, **fields)
            )
            result.changed += 1
    with transaction.atomic():
        ModelPrice.objects.bulk_create(new_rows, batch_size=500)
    return result
