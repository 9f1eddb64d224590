"""The guard's rules, in the documented first-match order (docs/api.md):

1. block: the tenant is suspended (`tenant_suspended`), the feature is sunset
   (`feature_sunset`), the tenant reached its monthly cap (`tenant_cap_reached`), the
   tenant reached its cap on this feature (`feature_cap_reached`), a budget whose action
   is `block` is spent (`budget_exceeded`);
2. downgrade to the feature's fallback model: a budget whose action is `downgrade` is
   spent (`budget_exceeded`), the feature is throttled (`feature_sunset`), its kill switch
   tripped (`spend_spike`), the tenant is on the free tier and cost more in its first 30
   days than its predicted lifetime value (`ltv_throttled`);
3. allow.

Each rule is a small function giving the limits it sets on a call: a standing one
matches as it is, one on spend when its counter reaches the limit. Limits on spend are
checked together, in one atomic step that also reserves the call's expected cost (see
`counters`), so the rules are listed first and judged in order after. Spend includes the
calls other requests were allowed and have not reported yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from django.utils import timezone

from finops.models import Tenant
from finops.money import money_format
from finops.periods import MONTH, period_end, period_label, period_start
from ingestion.models import Feature, PromptTemplate

from ..caps import FREE_TIER_WINDOW, cap_overridden
from ..models import Budget
from .counters import CheckItem, CheckResult, limits_check
from .estimates import call_estimate
from .policies import enforced_budgets, feature_by_key, feature_caps, prompt_by_key
from .scopes import calendar_scope, queue_name, window_scope

ALLOW, DOWNGRADE, BLOCK = "allow", "downgrade", "block"

TENANT_SUSPENDED = "tenant_suspended"
TENANT_CAP_REACHED = "tenant_cap_reached"
FEATURE_CAP_REACHED = "feature_cap_reached"
BUDGET_EXCEEDED = "budget_exceeded"
LTV_THROTTLED = "ltv_throttled"
FEATURE_SUNSET = "feature_sunset"
SPEND_SPIKE = "spend_spike"


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """The guard's answer (`error_type` names the rule that matched; null on allow)."""

    decision: Literal["allow", "downgrade", "block"]
    model: str
    reason: str
    error_type: str | None


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
    feature = call.feature
    if feature is None or not feature.kill_switch_enabled:
        return []
    since = feature.kill_switch_active_since
    if not since:
        return []
    return [
        Limit(
            DOWNGRADE,
            SPEND_SPIKE,
            lambda _: (
                f"The kill switch of {feature.key} tripped at {since:%Y-%m-%d %H:%M} UTC on "
                "a spend spike."
            ),
        )
    ]


def ltv_throttled(call: Call) -> list[Limit]:
    tenant, ltv = call.tenant, call.tenant.predicted_ltv
    if tenant.tier != Tenant.Tier.FREE or ltv is None:
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
        if budget.action == action and _budget_applies(budget, call)
    ]


def _budget_applies(budget: Budget, call: Call) -> bool:
    feature, prompt = call.feature, call.prompt
    if budget.tenant_id is not None and budget.tenant_id != call.tenant.id:
        return False
    if budget.feature_id is not None and (feature is None or budget.feature_id != feature.id):
        return False
    if budget.prompt_template_id is not None and (
        prompt is None or budget.prompt_template_id != prompt.id
    ):
        return False
    return not budget.model or budget.model == call.model


def _budget_limit(call: Call, budget: Budget) -> Limit:
    start = period_start(budget.period, call.now)
    feature = (budget.feature_id, budget.feature.key) if budget.feature_id else None
    prompt = (
        (budget.prompt_template_id, budget.prompt_template.key)
        if budget.prompt_template_id
        else None
    )
    scope = calendar_scope(period=budget.period, start=start,
                           end=period_end(budget.period, start), tenant_id=budget.tenant_id,
                           feature=feature, prompt_template=prompt,
                           model=budget.model or None)  # fmt: skip
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


# --- The decision ---------------------------------------------------------------------


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
    call = Call(
        tenant=tenant,
        feature=feature_by_key(feature_key),
        prompt=prompt_by_key(prompt_template_key),
        feature_key=feature_key,
        model=model,
        now=now,
        month=period_start(MONTH, now),
    )
    limits = _limits(call)
    for limit, result in zip(limits, _results(call, limits, estimated_cost), strict=True):
        if result.hit:
            return _decision(call, limit, result)
    return GuardDecision(ALLOW, model, "Within every cap, budget and policy.", None)


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


def _results(call: Call, limits: list[Limit], estimated_cost: Decimal | None) -> list[CheckResult]:
    """Each limit's result, the limits on spend checked in one step. The call reserves
    on its fallback's queue when a standing downgrade already applies."""
    items = [limit.item for limit in limits if limit.item is not None]
    if not items:
        return [MATCHED] * len(limits)
    tenant, feature_key, model = call.tenant, call.feature_key, call.model
    downgrade_queue = queue_name(tenant.id, feature_key, call.fallback or model)
    standing_downgrade = any(limit.item is None and limit.decision == DOWNGRADE for limit in limits)
    checked = iter(
        limits_check(
            items,
            reserve=lambda: (
                estimated_cost
                if estimated_cost is not None
                else call_estimate(feature_key=feature_key, model=model)
            ),
            allow_queue=(
                downgrade_queue if standing_downgrade else queue_name(tenant.id, feature_key, model)
            ),
            downgrade_queue=downgrade_queue,
        )
    )
    return [MATCHED if limit.item is None else next(checked) for limit in limits]


def _decision(call: Call, limit: Limit, result: CheckResult) -> GuardDecision:
    reason = limit.reason(result)
    if limit.decision == BLOCK:
        return GuardDecision(BLOCK, call.model, reason, limit.error_type)
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
