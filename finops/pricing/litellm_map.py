"""LiteLLM's price map (`model_prices_and_context_window.json`) as price rows.

Every entry is taken or skipped with its reason. Taken: token-priced modes (chat,
completion, responses), embeddings (input tokens) and rerank models (per query). Of an
entry, every key that changes a text-token bill: the base rates, `_batches`,
`_priority` and `_flex` rates, `_above_<N>k_tokens` long-context rates (and their
combinations), the one-hour cache write, `tiered_pricing` ranges and `off_peak_pricing`
windows. Images, audio, video and per-second prices are not modelled (docs/pricing.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from ..models import BEGINNING_OF_TIME, ModelPrice, PriceRate
from ..money import EXACT, per_token_to_per_million
from .cost import BASE_COLUMNS, parse_off_peak_windows
from .rules import frozen_rules

DEFAULT_PRICE_FILE = Path(__file__).resolve().parent.parent / "data" / "default_prices.json"

TOKEN_PRICED_MODES = {"chat", "completion", "responses"}
TAKEN_MODES = TOKEN_PRICED_MODES | {"embedding", "rerank"}

# LiteLLM's key stems, by the token kind they price.
_KIND_OF_STEM = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "output_cost_per_token": "output",
    "output_cost_per_reasoning_token": "reasoning",
}
_TIER_OF_SUFFIX = {"": "standard", "batches": "batch", "priority": "priority", "flex": "flex"}
_RATE_KEY = re.compile(
    r"^(?P<stem>input_cost_per_token|output_cost_per_token|output_cost_per_reasoning_token"
    r"|cache_read_input_token_cost|cache_creation_input_token_cost(?:_above_1hr)?)"
    r"(?:_above_(?P<n>\d+)(?P<k>k)?_tokens)?"
    r"(?:_(?P<tier>batches|priority|flex))?$"
)
PRICE_DECIMAL_PLACES = ModelPrice._meta.get_field("input_per_million").decimal_places
PRICE_FIELDS = (*BASE_COLUMNS.values(), "per_query", "mode", "off_peak_windows", "rules")

Rate = tuple[str, str, int, bool, Decimal]  # tier, kind, above tokens, off-peak, per 1M


@dataclass(slots=True)
class ParsedPrice:
    fields: dict[str, Any]
    rates: list[Rate] = field(default_factory=list)

    def rate_set(self) -> set[Rate]:
        return set(self.rates)


@dataclass(slots=True)
class ParsedPrices:
    prices: dict[str, ParsedPrice] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class Skip(Exception):
    """An entry that is not taken; the message is the reason."""


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


def _per_million(value: Any, key: str) -> Decimal:
    price = _as_decimal(value)
    if price is None:
        raise Skip(f"{key} is not a number")
    if price < 0:
        raise Skip("negative price")
    per_million = per_token_to_per_million(price)
    if per_million.as_tuple().exponent < -PRICE_DECIMAL_PLACES:
        raise Skip(f"price finer than 1e-{PRICE_DECIMAL_PLACES} per 1M tokens")
    return per_million


def _token_rates(entry: Mapping[str, Any]) -> list[Rate]:
    rates: list[Rate] = []
    for key, value in entry.items():
        match = _RATE_KEY.match(key)
        if match is None or value is None:
            continue
        kind = _KIND_OF_STEM[match["stem"]]
        above = int(match["n"]) * (1000 if match["k"] else 1) if match["n"] else 0
        tier = _TIER_OF_SUFFIX[match["tier"] or ""]
        rates.append((tier, kind, above, False, _per_million(value, key)))
    return rates


def _tiered_rates(entry: Mapping[str, Any]) -> list[Rate]:
    """`tiered_pricing` ranges as long-context rates: each range's rates apply to prompts
    above its start (a range's end is the next one's start; past the last, the last).
    Every kind a range does not state is stated from the range's own rates, as the
    vendors bill a whole call at its range's prices."""
    ranges = entry.get("tiered_pricing")
    if not isinstance(ranges, list) or not ranges:
        raise Skip("tiered_pricing is not a list of ranges")
    rates: list[Rate] = []
    starts: set[int] = set()
    for tier in ranges:
        if not isinstance(tier, Mapping):
            raise Skip("a tiered_pricing range is not an object")
        span = tier.get("range")
        start = _as_decimal(span[0]) if isinstance(span, list) and len(span) == 2 else None
        if start is None or start < 0 or start != int(start):
            raise Skip("a tiered_pricing range has no whole-number start")
        above = int(start)
        if above in starts:
            raise Skip("two tiered_pricing ranges start at the same size")
        starts.add(above)
        if tier.get("input_cost_per_token") is None:
            raise Skip("a tiered_pricing range has no input_cost_per_token")
        stated = {kind: _per_million(tier[stem], stem) for stem, kind in _KIND_OF_STEM.items()
                  if tier.get(stem) is not None}  # fmt: skip
        if "output" not in stated:
            if entry.get("output_cost_per_token") is None:
                raise Skip("a tiered_pricing range has no output_cost_per_token")
            stated["output"] = _per_million(entry["output_cost_per_token"], "output_cost_per_token")
        stated.setdefault("cached_input", stated["input"])
        stated.setdefault("cache_write", stated["input"])
        stated.setdefault("cache_write_1h", stated["cache_write"])
        stated.setdefault("reasoning", stated["output"])
        rates.extend(("standard", kind, above, False, value) for kind, value in stated.items())
    if 0 not in starts:
        raise Skip("tiered_pricing has no range starting at 0")
    return rates


def _off_peak(entry: Mapping[str, Any]) -> tuple[Any, list[Rate]]:
    block = entry.get("off_peak_pricing")
    if block is None:
        return [], []
    if not isinstance(block, Mapping):
        raise Skip("off_peak_pricing is not an object")
    windows = {k: block[k] for k in ("hours_utc", "windows", "weekday_timezone") if k in block}
    try:
        if not parse_off_peak_windows(windows):
            raise Skip("off_peak_pricing has no window")
    except ValueError as exc:
        raise Skip(f"off_peak_pricing: {exc}") from None
    rates: list[Rate] = []
    for stem, kind in _KIND_OF_STEM.items():
        if block.get(stem) is not None:
            rates.append(("standard", kind, 0, True, _per_million(block[stem], stem)))
    return windows, rates


def _no_token_price(entry: Mapping[str, Any], rates: list[Rate]) -> str:
    """Why an entry of a token-priced mode has no standard input and output price."""
    if any(key.endswith(("_per_second", "_per_video_per_second")) for key in entry):
        return "priced per second, not per token"
    if entry.get("input_cost_per_character") is not None:
        return "priced per character, not per token"
    if rates:
        return "priced only in another tier or range, with no standard input and output price"
    if not any("cost" in key or "pricing" in key for key in entry):
        return "no price in the entry"
    return "no input and output price per token"


def parse_entry(entry: Mapping[str, Any]) -> ParsedPrice:
    """One entry's price row fields and rates; raises `Skip` with the reason."""
    mode = entry.get("mode")
    if mode not in TAKEN_MODES:
        raise Skip(f"mode {mode!r} is not priced per token or per query")
    if "tiered_pricing" in entry and mode in TOKEN_PRICED_MODES:
        rates = _tiered_rates(entry)
    else:
        rates = _token_rates(entry)
    windows, off_peak_rates = _off_peak(entry)
    rates.extend(off_peak_rates)
    base = {kind: value for tier, kind, above, off, value in rates
            if tier == "standard" and not above and not off}  # fmt: skip
    fields: dict[str, Any] = {"off_peak_windows": windows, **_mode_fields(entry, base, rates)}
    for kind, value in base.items():
        fields[BASE_COLUMNS[kind]] = value
    extra = [r for r in rates if not (r[0] == "standard" and not r[2] and not r[3])]
    return ParsedPrice(fields=fields, rates=extra)


def _mode_fields(
    entry: Mapping[str, Any], base: dict[str, Decimal], rates: list[Any]
) -> dict[str, Any]:
    """The row's mode and per-query price; fills the base rates a mode leaves at 0 (a
    rerank's tokens, an embedding's output). Raises `Skip` when the mode's price is
    missing."""
    mode = entry.get("mode")
    if mode == "rerank":
        per_query = _as_decimal(entry.get("input_cost_per_query"))
        if per_query is None and "input" not in base:
            raise Skip("rerank entry without input_cost_per_query or input_cost_per_token")
        if per_query is not None and per_query < 0:
            raise Skip("negative price")
        base.setdefault("input", Decimal(0))
        base.setdefault("output", Decimal(0))
        return {"mode": "rerank"} | ({"per_query": per_query} if per_query is not None else {})
    if mode == "embedding":
        if "input" not in base:
            raise Skip("embedding entry without input_cost_per_token")
        base.setdefault("output", Decimal(0))
        return {"mode": "embedding"}
    if "input" not in base or "output" not in base:
        raise Skip(_no_token_price(entry, rates))
    return {"mode": "chat"}


_PRICE_PLACES = ModelPrice._meta.get_field("input_per_million").decimal_places
_PRICE_LIMIT = Decimal(10) ** (
    ModelPrice._meta.get_field("input_per_million").max_digits - _PRICE_PLACES
)
_BIGINT = 2**63 - 1


def _leaves(value: Any) -> list[Any]:
    """Every key and scalar of a JSON value."""
    leaves, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        else:
            leaves.append(item)
    return leaves


def _storable(name: str, entry: Mapping[str, Any]) -> ParsedPrice:
    """`parse_entry`, and `Skip` too for what the columns cannot hold: a price beyond
    them or finer than their places (never rounded), a threshold beyond 64 bits, a value
    of the wrong type, a NUL character (PostgreSQL refuses it). One bad entry never
    fails a whole file."""
    leaves = _leaves(entry)
    if any(isinstance(leaf, float) for leaf in leaves):
        # The file was read without parse_float=Decimal: the caller's error, not the file's.
        raise TypeError(f"{name}: a price file's numbers must be read as Decimal")
    if any(isinstance(leaf, str) and "\x00" in leaf for leaf in [name, *leaves]):
        raise Skip("contains a NUL character")
    try:
        parsed = parse_entry(entry)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise Skip(f"not a valid price entry ({type(exc).__name__})") from None
    prices = [v for v in parsed.fields.values() if isinstance(v, Decimal)]
    for value in [*prices, *(rate[4] for rate in parsed.rates)]:
        if not value.is_finite() or abs(value) >= _PRICE_LIMIT:
            raise Skip("price out of range")
        if -value.normalize(EXACT).as_tuple().exponent > _PRICE_PLACES:
            raise Skip(f"price finer than 1e-{_PRICE_PLACES}")
    if any(rate[2] > _BIGINT for rate in parsed.rates):
        raise Skip("token threshold out of range")
    return parsed


def parse_litellm_prices(data: Mapping[str, Any]) -> ParsedPrices:
    """Map LiteLLM's entries to price rows; every entry taken or skipped with a reason."""
    parsed = ParsedPrices()
    max_name = ModelPrice._meta.get_field("model").max_length
    for name, entry in data.items():
        if name == "sample_spec":
            parsed.skipped[name] = "documentation entry, not a model"
            continue
        if not isinstance(entry, Mapping):
            parsed.skipped[name] = "not a price entry"
            continue
        if len(name) > max_name:
            parsed.skipped[name] = "model name too long"
            continue
        try:
            price = _storable(name, entry)
        except Skip as exc:
            parsed.skipped[name] = str(exc)
            continue
        provider = str(entry.get("litellm_provider") or "")[:100]
        price.fields["provider"] = provider
        # The vendor's rules are part of the price: frozen with the row.
        price.fields["rules"] = frozen_rules(provider, name)
        parsed.prices[name] = price
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


def _row_rates(row: ModelPrice) -> set[Rate]:
    return {(r.service_tier, r.token_kind, r.above_tokens, r.off_peak, r.per_million)
            for r in row.rates.all()}  # fmt: skip


def _same_prices(row: ModelPrice, price: ParsedPrice) -> bool:
    defaults = {"mode": "chat", "off_peak_windows": []}
    same_fields = all(
        getattr(row, name) == price.fields.get(name, defaults.get(name)) for name in PRICE_FIELDS
    )
    return (
        same_fields and row.batch_discount_percent is None and _row_rates(row) == price.rate_set()
    )


def price_rows_create(
    *,
    rows: list[tuple[ModelPrice, ParsedPrice]],
    price_model: type[ModelPrice] = ModelPrice,
    rate_model: type[PriceRate] = PriceRate,
) -> None:
    """Write new rows and their rates (the model classes are the migration's own when a
    migration calls this)."""
    with transaction.atomic():
        price_model.objects.bulk_create([row for row, _ in rows], batch_size=500)
        rate_model.objects.bulk_create(
            [
                rate_model(
                    price_id=row.pk,
                    service_tier=tier,
                    token_kind=kind,
                    above_tokens=above,
                    off_peak=off_peak,
                    per_million=value,
                )
                for row, parsed in rows
                for tier, kind, above, off_peak, value in parsed.rates
            ],  # fmt: skip
            batch_size=1000,
        )


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
    rows = ModelPrice.objects.filter(model__in=parsed.prices.keys()).prefetch_related("rates")
    for row in rows.order_by("model", "effective_from"):
        latest[row.model] = row
    new_rows: list[tuple[ModelPrice, ParsedPrice]] = []
    for name, price in parsed.prices.items():
        current = latest.get(name)
        if current is None:
            starts = BEGINNING_OF_TIME
            result.created += 1
        elif _same_prices(current, price):
            result.unchanged += 1
            continue
        elif current.effective_from >= effective_from:
            result.skipped[name] = (
                f"price changed, but a row already starts at {current.effective_from:%Y-%m-%d}"
                " (at or after --effective-from)"
            )
            continue
        else:
            starts = effective_from
            result.changed += 1
        row = ModelPrice(model=name, effective_from=starts, source=source, **price.fields)
        new_rows.append((row, price))
    price_rows_create(rows=new_rows)
    return result
