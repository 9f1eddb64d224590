"""The optimization log: the decisions staff took, each measured after it took effect.

For a decision on feature F taking effect on day D (UTC), across tenants, from the daily
rollups (whole UTC days only; the day in progress never counts):

- **before**: the 30 days D-30 .. D-1; its calls and cost;
- **after**: the days from D (included) to D+29 or to yesterday, whichever comes first;
  `days_after` is how many (0 to 30); its calls and cost;
- **cost per call** before and after: cost / calls (none without calls);
- **realized monthly saving**, volume-adjusted (the saving at the new volume):
  (cost per call before - cost per call after) x calls per day after x 30, where calls
  per day after = calls after / days_after. A feature without calls after (retired)
  realizes its whole cost of the 30 days before. None without calls before, or
  before the first day after;
- **ratio**: realized / expected (none when either is missing or expected is 0, or the
  decision is in another currency than the ledger's);
- **status**: `measuring` (fewer than 7 days after), `no_data` (nothing to compare:
  no calls before), `realized` (a saving > 0), `not_realized` (<= 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from billing.selectors import feature_calls_costs_by_day
from finops.money import decimal_string
from finops.periods import DAY, period_start

from .models import OptimizationDecision, ProvisionedOffer

WINDOW_DAYS = 30
MEASURING_DAYS = 7
MEASURING = "measuring"
NO_DATA = "no_data"
REALIZED = "realized"
NOT_REALIZED = "not_realized"

_MONEY = Decimal("0.000001")
_PER_CALL = Decimal("0.0000000001")
_RATIO = Decimal("0.0001")


def _text(value: Decimal | None, places: Decimal) -> str | None:
    if value is None:
        return None
    return decimal_string(value.quantize(places, rounding=ROUND_HALF_UP))


@dataclass(slots=True)
class DecisionResult:
    """One decision as measured: see the module's docstring for each figure."""

    decision: OptimizationDecision
    days_after: int
    calls_before: int
    cost_before: Decimal
    calls_after: int
    cost_after: Decimal
    cost_per_call_before: Decimal | None
    cost_per_call_after: Decimal | None
    realized_monthly_saving: Decimal | None
    ratio: Decimal | None
    status: str
    currency: str

    def as_json(self) -> dict[str, Any]:
        return {
            "days_after": self.days_after,
            "calls_before": self.calls_before,
            "cost_before": _text(self.cost_before, _MONEY),
            "calls_after": self.calls_after,
            "cost_after": _text(self.cost_after, _MONEY),
            "cost_per_call_before": _text(self.cost_per_call_before, _PER_CALL),
            "cost_per_call_after": _text(self.cost_per_call_after, _PER_CALL),
            "expected_monthly_saving": _text(self.decision.expected_monthly_saving, _MONEY),
            "realized_monthly_saving": _text(self.realized_monthly_saving, _MONEY),
            "ratio": _text(self.ratio, _RATIO),
            "status": self.status,
            "currency": self.currency,
        }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _sums(per_day: dict[date, tuple[int, Decimal]], first: date, end: date) -> tuple[int, Decimal]:
    """Calls and cost of the days `first` <= day < `end`."""
    days = [value for day, value in per_day.items() if first <= day < end]
    return sum(c for c, _ in days), sum((cost for _, cost in days), Decimal(0))


def _realized(
    before: tuple[int, Decimal], after: tuple[int, Decimal], days_after: int
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(cost per call before, cost per call after, realized monthly saving)."""
    per_call_before = before[1] / before[0] if before[0] else None
    per_call_after = after[1] / after[0] if after[0] else None
    if per_call_before is None or not days_after:
        return per_call_before, per_call_after, None
    if per_call_after is None:  # no calls any more: its whole cost of a month is saved
        return per_call_before, None, before[1]
    saving = (per_call_before - per_call_after) * after[0] / days_after * WINDOW_DAYS
    return per_call_before, per_call_after, saving


def _status(days_after: int, realized: Decimal | None) -> str:
    if days_after < MEASURING_DAYS:
        return MEASURING
    if realized is None:
        return NO_DATA
    return REALIZED if realized > 0 else NOT_REALIZED


def _measure(
    decision: OptimizationDecision, per_day: dict[date, tuple[int, Decimal]], today: date
) -> DecisionResult:
    start = decision.decided_on
    end = min(start + timedelta(days=WINDOW_DAYS), today)
    days_after = max(0, (end - start).days)
    before = _sums(per_day, start - timedelta(days=WINDOW_DAYS), start)
    after = _sums(per_day, start, end)
    per_call_before, per_call_after, realized = _realized(before, after, days_after)
    currency = settings.FINOPS_DEFAULT_CURRENCY
    expected = decision.expected_monthly_saving
    ratio = None
    if realized is not None and expected and decision.currency == currency:
        ratio = realized / expected
    return DecisionResult(
        decision, days_after, before[0], before[1], after[0], after[1], per_call_before,
        per_call_after, realized, ratio, _status(days_after, realized), currency,
    )  # fmt: skip


def decision_results(
    decisions: Sequence[OptimizationDecision], now: datetime
) -> list[DecisionResult]:
    """Each decision measured as of `now`, in the order given (one query for them all)."""
    if not decisions:
        return []
    today = period_start(DAY, now).date()
    first = min(d.decided_on for d in decisions) - timedelta(days=WINDOW_DAYS)
    last = max(d.decided_on for d in decisions) + timedelta(days=WINDOW_DAYS)
    costs = feature_calls_costs_by_day(
        start=_midnight(first), end=_midnight(min(last, today)),
        features={d.feature.key for d in decisions},
    )  # fmt: skip
    return [_measure(d, costs.get(d.feature.key, {}), today) for d in decisions]


# --- Writes: the decisions, and the provisioned offers the savings ledger prices ---------


def decision_create(*, user: Any = None, **fields: Any) -> OptimizationDecision:
    """A decision as staff recorded it; `user` is None for an API key (no user)."""
    decision = OptimizationDecision(created_by=user, **fields)
    decision.full_clean()
    decision.save()
    return decision


def decision_update(*, decision: OptimizationDecision, **fields: Any) -> OptimizationDecision:
    for name, value in fields.items():
        setattr(decision, name, value)
    decision.full_clean()
    decision.save()
    return decision


def provisioned_offer_create(**fields: Any) -> ProvisionedOffer:
    offer = ProvisionedOffer(**fields)
    offer.full_clean()
    offer.save()
    return offer


def provisioned_offer_update(*, offer: ProvisionedOffer, **fields: Any) -> ProvisionedOffer:
    for name, value in fields.items():
        setattr(offer, name, value)
    offer.full_clean()
    offer.save()
    return offer
