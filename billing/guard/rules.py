"""The guard's rules, in the documented first-match order (docs/api.md):

1. block: the tenant is suspended (`tenant_suspended`), the feature is sunset
   (`feature_sunset`), the tenant reached its monthly cap (`tenant_cap_reached`), the
   tenant reached its cap on this feature (`feature_cap_reached`), a budget whose action
   is `block` is spent (`budget_exceeded`), a rate limit is reached (`rate_limited`,
   with `retry_after`);
2. downgrade to the feature's fallback model: a budget whose action is `downgrade` is
   spent (`budget_exceeded`), the feature is throttled (`feature_sunset`), a kill switch
   covering the tenant's calls of the feature tripped (`spend_spike`), the tenant is on
   the free tier and cost more in its first 30 days than its predicted lifetime value
   (`ltv_throttled`);
3. allow (with a `notice` when the feature is deprecated).

Each rule is a small function giving the limits it sets on a call: a standing one
matches as it is, one on spend when its counter reaches the limit. Limits on spend are
checked together, in one atomic step that also reserves the call's expected cost (see
`counters`), so the rules are listed first and judged in order after. Spend includes the
calls other requests were allowed and have not reported yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec
from django.utils import timezone

from finops.models import Tenant
from finops.money import money_format
from finops.periods import MONTH, period_end, period_label, period_start
from finops.revenue import predicted_ltv
from ingestion.models import Feature, PromptTemplate

from ..caps import FREE_TIER_WINDOW, cap_overridden
from ..killswitches import active_kill_switch, kill_switch_reason
from ..models import EACH_USER, Budget, RateLimit
from .counters import REQUESTS, SPEND, VALUE, CheckItem, CheckResult, limits_check
from .estimates import call_estimate
from .policies import (
    enforced_budgets,
    enforced_rate_limits,
    feature_by_key,
    feature_caps,
    prompt_by_key,
    sunset_date,
    tier_plans_cached,
)
from .scopes import COST, TOKENS, Scope, calendar_scope, limit_scope, window_scope

ALLOW, DOWNGRADE, BLOCK = "allow", "downgrade", "block"

TENANT_SUSPENDED = "tenant_suspended"
TENANT_CAP_REACHED = "tenant_cap_reached"
FEATURE_CAP_REACHED = "feature_cap_reached"
BUDGET_EXCEEDED = "budget_exceeded"
LTV_THROTTLED = "ltv_throttled"
FEATURE_SUNSET = "feature_sunset"
SPEND_SPIKE = "spend_spike"
RATE_LIMITED = "rate_limited"


class GuardDecision(msgspec.Struct, frozen=True, omit_defaults=True):
    """The guard's answer (`error_type` names the rule that matched; null on allow).
    `reservation_id`: the reservation this call holds on its limits; send it back on the
    call's event (or release it) so exactly this reservation is settled. `retry_after`:
    seconds until the rate limit that matched has room again. `notice`: the feature is
    deprecated, and when it will be sunset. The last three are left out when empty."""

    decision: Literal["allow", "downgrade", "block"]
    model: str
    reason: str
    error_type: str | None
    reservation_id: str | None = None
    retry_after: int | None = None
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """The call asked about, with the policies it is judged on."""

    tenant: Tenant
    feature: Feature | None
    prompt: PromptTemplate | None
    feature_key: str
    model: str
    now: datetime
    month: datetime
    user: str = ""
    api_key_id: int | None = None

    @property
    def fallback(self) -> str:
        return self.feature.fallback_model if self.feature is not None else ""

    def money(self, amount: Decimal) -> str:
        return money_format(amount, self.tenant.billing_currency)


@dataclass(frozen=True, slots=True)
class Limit:
    """What a rule says of a call: its decision and reason when it matches. A standing
    limit (no `item`) matches as it is; one on spend when its check is hit."""

    decision: str
    error_type: str
    reason: Callable[[CheckResult], str]
    item: CheckItem | None = None
    retry_after: int | None = None


# What a standing limit matches with: nothing was counted.
MATCHED = CheckResult(hit=True, spend=Decimal(0), reserved=Decimal(0))


def _in_flight(result: CheckResult) -> Decimal:
    return result.spend + result.reserved


# --- The rules ------------------------------------------------------------------------


def tenant_suspended(call: Call) -> list[Limit]:
    tenant = call.tenant
    if tenant.status == Tenant.Status.ACTIVE:
        return []
    return [Limit(BLOCK, TENANT_SUSPENDED, lambda _: f"Tenant {tenant.slug} is {tenant.status}.")]


def feature_sunset(call: Call) -> list[Limit]:
    feature = call.feature
    if feature is None or feature.status != Feature.Status.SUNSET:
        return []
    reason = f"Feature {feature.key} is sunset: it no longer makes calls."
    return [Limit(BLOCK, FEATURE_SUNSET, lambda _: reason)]


def tenant_cap(call: Call) -> list[Limit]:
    tenant, cap = call.tenant, call.tenant.monthly_cap
    if cap is None or cap_overridden(tenant, call.now):
        return []
    scope = calendar_scope(period=MONTH, start=call.month, end=period_end(MONTH, call.month),
                           tenant_id=tenant.id)  # fmt: skip
    return [
        Limit(
            BLOCK,
            TENANT_CAP_REACHED,
            lambda result: (
                f"{tenant.slug} reached its monthly cap of {call.money(cap)} for "
                f"{call.month:%Y-%m} ({call.money(_in_flight(result))} spent or in flight)."
            ),
            CheckItem(scope, cap, strict=False, blocking=True),
        )
    ]


def feature_cap(call: Call) -> list[Limit]:
    tenant, feature = call.tenant, call.feature
    if feature is None or cap_overridden(tenant, call.now):
        return []
    cap = feature_caps(tenant.id).get(feature.id)
    if cap is None:
        return []
    scope = calendar_scope(period=MONTH, start=call.month, end=period_end(MONTH, call.month),
                           tenant_id=tenant.id, feature=(feature.id, feature.key))  # fmt: skip
    return [
        Limit(
            BLOCK,
            FEATURE_CAP_REACHED,
            lambda result: (
                f"{tenant.slug} reached its monthly cap of {call.money(cap)} on {feature.key} "
                f"for {call.month:%Y-%m} ({call.money(_in_flight(result))} spent or in flight)."
            ),
            CheckItem(scope, cap, strict=False, blocking=True),
        )
    ]


def blocking_budgets(call: Call) -> list[Limit]:
    return _budget_limits(call, Budget.Action.BLOCK)


def downgrading_budgets(call: Call) -> list[Limit]:
    return _budget_limits(call, Budget.Action.DOWNGRADE)


def feature_throttled(call: Call) -> list[Limit]:
    feature = call.feature
    if feature is None or feature.status != Feature.Status.THROTTLED:
        return []
    reason = f"Feature {feature.key} is throttled ahead of its sunset."
    return [Limit(DOWNGRADE, FEATURE_SUNSET, lambda _: reason)]


def kill_switch(call: Call) -> list[Limit]:
    """The tenant's own switch on the feature, else a feature-wide one staff set."""
    if call.feature is None:
        return []
    switch = active_kill_switch(call.tenant.id, call.feature.id)
    if switch is None:
        return []
    reason = kill_switch_reason(switch)
    return [Limit(DOWNGRADE, SPEND_SPIKE, lambda _: reason)]


def rate_limits(call: Call) -> list[Limit]:
    limits: list[Limit] = []
    for rate in enforced_rate_limits():
        if _applies(rate, call):
            limits += _rate_limits(call, rate)
    return limits


def ltv_throttled(call: Call) -> list[Limit]:
    tenant = call.tenant
    if tenant.tier != Tenant.Tier.FREE:
        return []
    # The one staff set, else the tier plans' (cached: no query per call).
    ltv = tenant.predicted_ltv
    if ltv is None:
        ltv = predicted_ltv(tenant, tier_plans_cached())
    if ltv is None:
        return []
    scope = window_scope(tenant_id=tenant.id, start=tenant.signup_at,
                         end=tenant.signup_at + FREE_TIER_WINDOW)  # fmt: skip
    return [
        Limit(
            DOWNGRADE,
            LTV_THROTTLED,
            lambda result: (
                f"{tenant.slug} (free tier) cost {call.money(result.spend)} in its first 30 "
                f"days, more than its predicted lifetime value of {call.money(ltv)}."
            ),
            CheckItem(scope, ltv, strict=True, blocking=False),
        )
    ]


RULES: tuple[Callable[[Call], list[Limit]], ...] = (
    tenant_suspended,
    feature_sunset,
    tenant_cap,
    feature_cap,
    blocking_budgets,
    rate_limits,
    downgrading_budgets,
    feature_throttled,
    kill_switch,
    ltv_throttled,
)


# --- Budgets --------------------------------------------------------------------------


def _budget_limits(call: Call, action: str) -> list[Limit]:
    return [
        _budget_limit(call, budget)
        for budget in enforced_budgets()
        if budget.action == action and _applies(budget, call)
    ]


def _applies(limit: Budget | RateLimit, call: Call) -> bool:
    """Whether a budget's or rate limit's scope covers the call."""
    feature, prompt = call.feature, call.prompt
    if limit.tenant_id is not None and limit.tenant_id != call.tenant.id:
        return False
    if limit.feature_id is not None and (feature is None or limit.feature_id != feature.id):
        return False
    if limit.prompt_template_id is not None and (
        prompt is None or limit.prompt_template_id != prompt.id
    ):
        return False
    if limit.api_key_id is not None and limit.api_key_id != call.api_key_id:
        return False
    if limit.user == EACH_USER:
        if not call.user:
            return False
    elif limit.user and limit.user != call.user:
        return False
    return not limit.model or limit.model == call.model


def _scope(call: Call, limit: Budget | RateLimit, period: str, measure: str = COST) -> Scope:
    """A limit for each end user counts the call's own."""
    user = call.user if limit.user == EACH_USER else (limit.user or None)
    return limit_scope(limit, period=period, at=call.now, user=user, measure=measure)


def _budget_limit(call: Call, budget: Budget) -> Limit:
    scope = _scope(call, budget, budget.period)
    start = scope.start
    action = budget.action
    return Limit(
        BLOCK if action == Budget.Action.BLOCK else DOWNGRADE,
        BUDGET_EXCEEDED,
        lambda result: (
            f"Budget {budget} ({budget.scope_label}) is spent for "
            f"{period_label(budget.period, start)}: {call.money(_in_flight(result))} of "
            f"{call.money(budget.amount)}."
        ),
        CheckItem(scope, budget.amount, strict=False, blocking=action == Budget.Action.BLOCK),
    )


# --- Rate limits ----------------------------------------------------------------------


def _rate_limits(call: Call, rate: RateLimit) -> list[Limit]:
    """One limit per measure the rate limit sets: requests are counted as the guard lets
    calls through, tokens and cost as their events arrive (cost with calls in flight)."""
    window = rate.window
    limits = []
    for measure, amount, unit in (
        (REQUESTS, rate.requests, "requests"),
        (TOKENS, rate.tokens, "tokens"),
        (COST, rate.cost, None),
    ):
        if amount is None:
            continue
        scope = _scope(call, rate, window, TOKENS if measure == TOKENS else COST)
        kind = {REQUESTS: REQUESTS, TOKENS: VALUE}.get(measure, SPEND)
        item = CheckItem(scope, Decimal(amount), strict=False, blocking=True, kind=kind)
        retry = max(1, math.ceil((scope.end - call.now).total_seconds()))
        limits.append(
            Limit(BLOCK, RATE_LIMITED, _rate_reason(call, rate, amount, unit), item, retry)
        )
    return limits


def _rate_reason(
    call: Call, rate: RateLimit, amount: Decimal | int, unit: str | None
) -> Callable[[CheckResult], str]:
    limit = f"{amount:,} {unit}" if unit else call.money(Decimal(amount))

    def reason(result: CheckResult) -> str:
        used = f"{result.spend:,.0f} {unit}" if unit else call.money(_in_flight(result))
        return (f"Rate limit {rate} ({rate.scope_label}) reached: {used} of {limit} this "
                f"{rate.window}.")  # fmt: skip

    return reason


# --- The decision ---------------------------------------------------------------------


def guard_decide(
    *,
    tenant: Tenant,
    feature_key: str,
    model: str,
    prompt_template_key: str = "",
    estimated_cost: Decimal | None = None,
    now: datetime | None = None,
    user: str = "",
    api_key_id: int | None = None,
) -> GuardDecision:
    now = now or timezone.now()
    call = Call(
        tenant=tenant,
        feature=feature_by_key(feature_key),
        prompt=prompt_by_key(prompt_template_key),
        feature_key=feature_key,
        model=model,
        now=now,
        month=period_start(MONTH, now),
        user=user,
        api_key_id=api_key_id,
    )
    limits = _limits(call)
    results, reservation = _results(call, limits, estimated_cost)
    decision = GuardDecision(ALLOW, model, "Within every cap, budget and policy.", None)
    for limit, result in zip(limits, results, strict=True):
        if result.hit:
            decision = _decision(call, limit, result)
            break
    return msgspec.structs.replace(decision, reservation_id=reservation, notice=_notice(call))


def _notice(call: Call) -> str | None:
    feature = call.feature
    if feature is None or feature.status != Feature.Status.DEPRECATED:
        return None
    sunset = sunset_date(feature.id)
    when = f"it will be sunset on {sunset:%Y-%m-%d}" if sunset else "no sunset date is set yet"
    return f"Feature {feature.key} is deprecated: {when}. Move its calls before then."


def _limits(call: Call) -> list[Limit]:
    """Every rule's limits, in order. A standing block that comes first is the answer
    alone: nothing is counted or reserved for a call it refuses."""
    limits: list[Limit] = []
    for rule in RULES:
        for limit in rule(call):
            if not limits and limit.item is None and limit.decision == BLOCK:
                return [limit]
            limits.append(limit)
    return limits


def _results(
    call: Call, limits: list[Limit], estimated_cost: Decimal | None
) -> tuple[list[CheckResult], str | None]:
    """Each limit's result, the limits on spend and rate checked in one step, and the
    reservation the call holds (None: nothing reserved)."""
    items = [limit.item for limit in limits if limit.item is not None]
    if not items:
        return [MATCHED] * len(limits), None
    feature_key, model = call.feature_key, call.model
    checked = limits_check(
        items,
        reserve=lambda: (
            estimated_cost
            if estimated_cost is not None
            else call_estimate(feature_key=feature_key, model=model)
        ),
    )
    results = iter(checked.results)
    return [MATCHED if limit.item is None else next(results) for limit in limits], (
        checked.reservation
    )


def _decision(call: Call, limit: Limit, result: CheckResult) -> GuardDecision:
    reason = limit.reason(result)
    if limit.decision == BLOCK:
        return GuardDecision(BLOCK, call.model, reason, limit.error_type,
                             retry_after=limit.retry_after)  # fmt: skip
    if call.fallback:
        return GuardDecision(DOWNGRADE, call.fallback, f"{reason} Use {call.fallback}.",
                             limit.error_type)  # fmt: skip
    subject = call.feature.key if call.feature is not None else "this call"
    return GuardDecision(
        DOWNGRADE,
        call.model,
        f"{reason} No fallback model is set for {subject}: keep {call.model}.",
        limit.error_type,
    )
