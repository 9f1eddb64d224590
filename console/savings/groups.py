"""The savings ledger's groups and how one is priced again (`Pricer`), the results'
shapes, and the helpers every lever shares."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from finops.models import Tenant
from finops.pricing import PriceBook, RateCard, RateClass, TokenVector

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


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _per(amount: Decimal, count: int) -> Decimal | None:
    return _micros(amount / count) if count else None


def _workload(ctx: Context, cell: Cell) -> str:
    return getattr(ctx.features.get(cell.feature), "workload", "")
