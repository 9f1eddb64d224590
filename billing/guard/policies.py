"""What the rules read from the database (tenants, features, prompt templates, caps,
budgets, rate limits, tier plans), kept in memory for FINOPS_GUARD_POLICY_TTL seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings

from finops.models import Tenant, TierPlan
from finops.revenue import tier_plans
from ingestion.models import Feature, PromptTemplate

from ..killswitches import kill_switch_cache_clear
from ..models import Budget, FeatureCap, RateLimit
from . import estimates

T = TypeVar("T")
_cache: dict[Any, tuple[float, Any]] = {}


def _cached(key: Any, load: Callable[[], T]) -> T:
    ttl = settings.FINOPS_GUARD_POLICY_TTL
    now = time.monotonic()
    hit = _cache.get(key)
    if ttl > 0 and hit is not None and hit[0] > now:
        return hit[1]
    value = load()
    if ttl > 0:
        _cache[key] = (now + ttl, value)
    return value


def policy_cache_clear() -> None:
    _cache.clear()
    estimates.estimate_cache_clear()
    kill_switch_cache_clear()


def tenant_by_slug(slug: str) -> Tenant | None:
    return _cached(("tenant", slug), lambda: Tenant.objects.filter(slug=slug).first())


def feature_by_key(key: str) -> Feature | None:
    if not key:
        return None
    return _cached(("feature", key), lambda: Feature.objects.filter(key=key).first())


def prompt_by_key(key: str) -> PromptTemplate | None:
    if not key:
        return None
    return _cached(("prompt", key), lambda: PromptTemplate.objects.filter(key=key).first())


def feature_caps(tenant_id: int) -> dict[int, Decimal]:
    """The tenant's monthly caps by feature id."""
    return _cached(
        ("feature_caps", tenant_id),
        lambda: dict(
            FeatureCap.objects.filter(tenant_id=tenant_id).values_list("feature_id", "monthly_cap")
        ),
    )


def enforced_budgets() -> list[Budget]:
    """Every budget whose action is not only to notify."""
    return _cached(
        "budgets",
        lambda: list(
            Budget.objects.exclude(action=Budget.Action.NOTIFY).select_related(
                "tenant", "feature", "prompt_template", "api_key"
            )
        ),
    )


def enforced_rate_limits() -> list[RateLimit]:
    return _cached(
        "rate_limits",
        lambda: list(
            RateLimit.objects.select_related("tenant", "feature", "prompt_template", "api_key")
        ),
    )


def sunset_date(feature_id: int) -> date | None:
    """When a deprecated feature is to be sunset (set by its retirement review)."""
    return _cached(
        ("sunset", feature_id),
        lambda: Feature.objects.filter(id=feature_id).values_list("sunset_on", flat=True).first(),
    )


def tier_plans_cached() -> dict[str, TierPlan]:
    """Every tier's plan, by tier: what a free tenant's lifetime value is derived from
    when staff set none (a plan changed in the admin applies within the TTL)."""
    return _cached("tier_plans", tier_plans)
