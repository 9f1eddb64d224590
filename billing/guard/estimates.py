"""What a call is expected to cost, reserved on its limits until its event arrives."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from finops.fields import ExactSum
from finops.periods import DAY, period_start

from ..models import FeatureRollup
from .amounts import NANO, to_nanos

ESTIMATE_DAYS = 7
ESTIMATE_TTL = 600.0
_estimates: dict[tuple[str, str], tuple[float, Decimal]] = {}


def estimate_cache_clear() -> None:
    _estimates.clear()


def call_estimate(*, feature_key: str, model: str) -> Decimal:
    """The average priced call of this feature and model over the last 7 days (else of
    the model), from the rollups, to the billionth; kept in memory for ESTIMATE_TTL
    seconds."""
    key = (feature_key, model)
    now = time.monotonic()
    hit = _estimates.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    since = period_start(DAY, timezone.now()) - timedelta(days=ESTIMATE_DAYS)
    rows = FeatureRollup.objects.filter(grain=FeatureRollup.Grain.DAY, period_start__gte=since,
                                        model=model)  # fmt: skip
    estimate = Decimal(0)
    for scoped in (rows.filter(feature=feature_key), rows):
        totals = scoped.aggregate(cost=ExactSum("cost"), calls=ExactSum("priced_calls"))
        if totals["calls"]:
            estimate = to_nanos(totals["cost"] / totals["calls"]) * NANO
            break
    _estimates[key] = (now + ESTIMATE_TTL, estimate)
    return estimate
