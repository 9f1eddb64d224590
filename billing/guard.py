"""The guard: allow, downgrade or block one model call, before it is made.

Rules, first match wins:

1. block: the tenant is suspended (`tenant_suspended`), the feature is sunset
   (`feature_sunset`), the tenant reached its monthly cap (`tenant_cap_reached`), the
   tenant reached its cap on this feature (`feature_cap_reached`), a budget whose action
   is `block` is spent (`budget_exceeded`);
2. downgrade to the feature's fallback model: a budget whose action is `downgrade` is
   spent (`budget_exceeded`), the feature is throttled (`feature_sunset`), its kill switch
   tripped (`spend_spike`), the tenant is on the free tier and cost more in its first 30
   days than its predicted lifetime value (`ltv_throttled`);
3. allow.

Spend is read from the hot counters (`billing.hotstate`) and includes the calls other
requests were allowed and have not reported yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from finops.fields import ExactSum
from finops.models import Tenant
from finops.money import EXACT, round_money
from finops.periods import MONTH, period_end, period_label, period_start
from ingestion.models import Feature, PromptTemplate
from ingestion.signals import SpendRow

from . import hotstate
from .caps import FREE_TIER_WINDOW, cap_overridden
from .models import Budget, FeatureCap, FeatureRollup

log = logging.getLogger(__name__)

ALLOW, DOWNGRADE, BLOCK = "allow", "downgrade", "block"

TENANT_SUSPENDED = "tenant_suspended"
TENANT_CAP_REACHED = "tenant_cap_reached"
FEATURE_CAP_REACHED = "feature_cap_reached"
BUDGET_EXCEEDED = "budget_exceeded"
LTV_THROTTLED = "ltv_throttled"
FEATURE_SUNSET = "feature_sunset"
SPEND_SPIKE = "spend_spike"

ESTIMATE_DAYS = 7
ESTIMATE_TTL = 600.0
_estimates: dict[tuple[str, str, str], tuple[float, Decimal]] = {}


@dataclass(frozen=True, slots=True)
class GuardDecision:
    decision: str
    model: str
    reason: str
    error_type: str | None = None


# --- Policies, kept in memory for FINOPS_GUARD_POLICY_TTL seconds ---------------------

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
    _estimates.clear()


def tenant_by_slug(slug: str) -> Tenant | None:
    return _cached(("tenant", slug), lambda: Tenant.objects.filter(slug=slug).first())


def _feature(key: str) -> Feature | None:
    return _cached(("feature", key), lambda: Feature.objects.filter(key=key).first())


def _prompt(key: str) -> PromptTemplate | None:
    return _cached(("prompt", key), lambda: PromptTemplate.objects.filter(key=key).first())


def _feature_caps(tenant_id: int) -> dict[int, Decimal]:
    return _cached(
        ("feature_caps", tenant_id),
        lambda: dict(
            FeatureCap.objects.filter(tenant_id=tenant_id).values_list("feature_id", "monthly_cap")
        ),
    )


def _enforced_budgets() -> list[Budget]:
    return _cached(
        "budgets",
        lambda: list(
            Budget.objects.exclude(action=Budget.Action.NOTIFY).select_related(
                "feature", "prompt_template"
            )
        ),
    )


# --- The decision ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Limit:
    item: hotstate.CheckItem
    error_type: str
    describe: Callable[[Decimal], str]


def guard_decide(
    *,
    tenant: Tenant,
    feature_key: str,
    model: str,
    prompt_template_key: str = "",
    estimated_cost: Decimal | None = None,
    now: datetime | None = None,
) -> GuardDecision:
    now = now or timezone.now()
    currency = tenant.billing_currency

    def money(amount: Decimal) -> str:
        return f"{round_money(amount, currency)} {currency}"

    if tenant.status != Tenant.Status.ACTIVE:
        return GuardDecision(BLOCK, model, f"Tenant {tenant.slug} is {tenant.status}.",
                             TENANT_SUSPENDED)  # fmt: skip
    feature = _feature(feature_key) if feature_key else None
    if feature is not None and feature.status == Feature.Status.SUNSET:
        return GuardDecision(
            BLOCK, model, f"Feature {feature.key} is sunset: it no longer makes calls.",
            FEATURE_SUNSET,
        )  # fmt: skip
    prompt = _prompt(prompt_template_key) if prompt_template_key else None
    feature_dim = (feature.id, feature.key) if feature else None

    blocking: list[_Limit] = []
    downgrading: list[_Limit] = []
    month = period_start(MONTH, now)
    month_end = period_end(MONTH, month)
    if tenant.monthly_cap is not None and not cap_overridden(tenant, now):
        cap = tenant.monthly_cap
        blocking.append(
            _Limit(
                hotstate.CheckItem(
                    hotstate.calendar_scope(
                        period=MONTH, start=month, end=month_end, tenant_id=tenant.id
                    ),
                    cap,
                    strict=False,
                    blocking=True,
                ),
                TENANT_CAP_REACHED,
                lambda spend, cap=cap: (
                    f"{tenant.slug} reached its monthly cap of {money(cap)} for {month:%Y-%m} "
                    f"({money(spend)} spent or in flight)."
                ),
            )
        )
    if feature is not None and not cap_overridden(tenant, now):
        feature_cap = _feature_caps(tenant.id).get(feature.id)
        if feature_cap is not None:
            blocking.append(
                _Limit(
                    hotstate.CheckItem(
                        hotstate.calendar_scope(
                            period=MONTH,
                            start=month,
                            end=month_end,
                            tenant_id=tenant.id,
                            feature=feature_dim,
                        ),  # fmt: skip
                        feature_cap,
                        strict=False,
                        blocking=True,
                    ),
                    FEATURE_CAP_REACHED,
                    lambda spend, cap=feature_cap: (
                        f"{tenant.slug} reached its monthly cap of {money(cap)} on "
                        f"{feature.key} for {month:%Y-%m} ({money(spend)} spent or in flight)."
                    ),
                )
            )
    for budget in _enforced_budgets():
        if not _budget_applies(budget, tenant, feature, prompt, model):
            continue
        start = period_start(budget.period, now)
        scope = hotstate.calendar_scope(
            period=budget.period,
            start=start,
            end=period_end(budget.period, start),
            tenant_id=budget.tenant_id,
            feature=(budget.feature_id, budget.feature.key) if budget.feature_id else None,
            prompt_template=(
                (budget.prompt_template_id, budget.prompt_template.key)
                if budget.prompt_template_id
                else None
            ),
            model=budget.model or None,
        )
        is_block = budget.action == Budget.Action.BLOCK
        limit = _Limit(
            hotstate.CheckItem(scope, budget.amount, strict=False, blocking=is_block),
            BUDGET_EXCEEDED,
            lambda spend, budget=budget, start=start: (
                f"Budget {budget} ({budget.scope_label}) is spent for "
                f"{period_label(budget.period, start)}: {money(spend)} of "
                f"{money(budget.amount)}."
            ),
        )
        (blocking if is_block else downgrading).append(limit)
    ltv: _Limit | None = None
    if tenant.tier == Tenant.Tier.FREE and tenant.predicted_ltv is not None:
        ltv_value = tenant.predicted_ltv
        ltv = _Limit(
            hotstate.CheckItem(
                hotstate.window_scope(
                    tenant_id=tenant.id,
                    start=tenant.signup_at,
                    end=tenant.signup_at + FREE_TIER_WINDOW,
                ),
                ltv_value,
                strict=True,
                blocking=False,
            ),
            LTV_THROTTLED,
            lambda spend, ltv_value=ltv_value: (
                f"{tenant.slug} (free tier) cost {money(spend)} in its first 30 days, more "
                f"than its predicted lifetime value of {money(ltv_value)}."
            ),
        )

    fallback = feature.fallback_model if feature is not None else ""
    standing: tuple[str, str] | None = None  # a downgrade no counter decides
    if feature is not None and feature.status == Feature.Status.THROTTLED:
        standing = (FEATURE_SUNSET, f"Feature {feature.key} is throttled ahead of its sunset.")
    elif feature is not None and feature.kill_switch_enabled and feature.kill_switch_active_since:
        standing = (
            SPEND_SPIKE,
            f"The kill switch of {feature.key} tripped at "
            f"{feature.kill_switch_active_since:%Y-%m-%d %H:%M} UTC on a spend spike.",
        )

    limits = blocking + downgrading + ([ltv] if ltv else [])
    results: list[hotstate.CheckResult] = []
    if limits:
        results = _check(
            [limit.item for limit in limits],
            tenant=tenant,
            feature_key=feature_key,
            model=model,
            fallback=fallback or model,
            downgrade_now=standing is not None,
            estimated_cost=estimated_cost,
        )
    hits = {id(limit): result for limit, result in zip(limits, results, strict=True) if result.hit}

    for limit in blocking:
        if id(limit) in hits:
            result = hits[id(limit)]
            return GuardDecision(
                BLOCK, model, limit.describe(result.spend + result.reserved), limit.error_type
            )
    reasons: list[tuple[str, str]] = []
    for limit in downgrading:
        if id(limit) in hits:
            result = hits[id(limit)]
            reasons.append((limit.error_type, limit.describe(result.spend + result.reserved)))
    if standing:
        reasons.append(standing)
    if ltv is not None and id(ltv) in hits:
        result = hits[id(ltv)]
        reasons.append((ltv.error_type, ltv.describe(result.spend)))
    if reasons:
        error_type, reason = reasons[0]
        if fallback:
            return GuardDecision(DOWNGRADE, fallback, f"{reason} Use {fallback}.", error_type)
        return GuardDecision(
            DOWNGRADE,
            model,
            f"{reason} No fallback model is set for "
            f"{feature.key if feature else 'this call'}: keep {model}.",
            error_type,
        )
    return GuardDecision(ALLOW, model, "Within every cap, budget and policy.", None)


def _budget_applies(
    budget: Budget,
    tenant: Tenant,
    feature: Feature | None,
    prompt: PromptTemplate | None,
    model: str,
) -> bool:
    if budget.tenant_id is not None and budget.tenant_id != tenant.id:
        return False
    if budget.feature_id is not None and (feature is None or budget.feature_id != feature.id):
        return False
    if budget.prompt_template_id is not None and (
        prompt is None or budget.prompt_template_id != prompt.id
    ):
        return False
    return not budget.model or budget.model == model


def _check(
    items: list[hotstate.CheckItem],
    *,
    tenant: Tenant,
    feature_key: str,
    model: str,
    fallback: str,
    downgrade_now: bool,
    estimated_cost: Decimal | None,
) -> list[hotstate.CheckResult]:
    if hotstate.available():
        try:
            reserve = (
                estimated_cost
                if estimated_cost is not None
                else call_estimate(feature_key=feature_key, model=model)
            )
            allow_queue = hotstate.queue_name(tenant.id, feature_key, model)
            downgrade_queue = hotstate.queue_name(tenant.id, feature_key, fallback)
            results = hotstate.counters_check(
                items,
                reserve=reserve,
                allow_queue=downgrade_queue if downgrade_now else allow_queue,
                downgrade_queue=downgrade_queue,
            )
            return results
        except redis.RedisError:
            hotstate.mark_down()
            log.warning("guard: Redis unavailable, answering from the ledger", exc_info=True)
    return hotstate.ledger_check(items)


def call_estimate(*, feature_key: str, model: str) -> Decimal:
    """What a call is expected to cost: the average priced call of this feature and model
    over the last 7 days (else of the model), from the rollups; kept in memory for
    ESTIMATE_TTL seconds."""
    key = ("estimate", feature_key, model)
    now = time.monotonic()
    hit = _estimates.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    since = period_start("day", timezone.now()) - timedelta(days=ESTIMATE_DAYS)
    rows = FeatureRollup.objects.filter(grain=FeatureRollup.Grain.DAY, period_start__gte=since,
                                        model=model)  # fmt: skip
    estimate = Decimal(0)
    for scoped in (rows.filter(feature=feature_key), rows):
        totals = scoped.aggregate(cost=ExactSum("cost"), calls=ExactSum("priced_calls"))
        if totals["calls"]:
            estimate = hotstate.to_nanos(totals["cost"] / totals["calls"]) * Decimal("1e-9")
            break
    _estimates[key] = (now + ESTIMATE_TTL, estimate)
    return estimate


# --- Keeping the counters current -----------------------------------------------------


def spend_recorded_receiver(sender: Any, rows: list[SpendRow], **kwargs: Any) -> None:
    """Inside the storing transaction: note its id and what it adds; after the commit,
    add it to the hot counters."""
    if not hotstate.enabled() or not rows:
        return
    xact = kwargs.get("xact")
    if not xact:  # a sender that did not insert the rows itself
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            xact = cursor.fetchone()[0]
    increment = spend_increment(xact, rows)
    transaction.on_commit(lambda: _apply(increment))


def spend_increment(xact: int, rows: list[SpendRow]) -> hotstate.Increment:
    with localcontext(EXACT):
        return _spend_increment(xact, rows)


def _spend_increment(xact: int, rows: list[SpendRow]) -> hotstate.Increment:
    cells: dict[tuple[int, str, str, str, str], Decimal] = {}
    direct: dict[str, Decimal] = {}
    releases: dict[str, int] = {}
    for row in rows:
        tenant = row.tenant
        if row.new_event:
            queue = hotstate.queue_name(tenant.id, row.feature_key, row.model)
            releases[queue] = releases.get(queue, 0) + 1
        if not row.cost:
            continue
        cell = (
            tenant.id,
            "" if row.feature_id is None else str(row.feature_id),
            "" if row.prompt_template_id is None else str(row.prompt_template_id),
            row.model,
            row.timestamp.astimezone(UTC).strftime("%Y%m%d%H"),
        )
        cells[cell] = cells.get(cell, Decimal(0)) + row.cost
        if (
            tenant.tier == Tenant.Tier.FREE
            and tenant.signup_at <= row.timestamp < tenant.signup_at + FREE_TIER_WINDOW
        ):
            name = hotstate.window_scope(
                tenant_id=tenant.id,
                start=tenant.signup_at,
                end=tenant.signup_at + FREE_TIER_WINDOW,
            ).name
            direct[name] = direct.get(name, Decimal(0)) + row.cost
    return hotstate.Increment(xact=xact, cells=cells, direct=direct, releases=releases)


def _apply(increment: hotstate.Increment) -> None:
    if not hotstate.available():
        return  # the ledger has it; the counters heal when they are seeded again
    try:
        hotstate.increment_apply(increment)
    except redis.RedisError:
        hotstate.mark_down()
        # The ledger has it; the counter heals when it is seeded again.
        log.warning("guard: could not add committed spend to Redis", exc_info=True)
