"""Budgets and rate limits written; a budget's spend, read from the rollups (from the
events for budgets on end users or API keys), and the alerts at its thresholds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from finops.fields import ExactSum
from finops.money import money_format
from finops.periods import HOUR, period_end, period_label, period_start

from .alerts import alert_raise
from .guard.ledger import scope_events
from .guard.policies import policy_cache_clear
from .guard.scopes import limit_scope
from .models import EACH_USER, Alert, Budget, LimitScope, RateLimit, UsageRollup

SCOPE_FIELDS = ("name", "tenant", "feature", "model", "prompt_template", "user", "api_key")
BUDGET_FIELDS = (*SCOPE_FIELDS, "period", "amount", "thresholds", "action")
RATE_LIMIT_FIELDS = (*SCOPE_FIELDS, "window", "requests", "tokens", "cost")


def limit_scope_complete(limit: Budget | RateLimit) -> None:
    """A tenant's API key only ever spends for its tenant: a limit on one names the tenant
    too, so that the tenant's own keys list it."""
    if limit.api_key_id and limit.api_key.tenant_id and not limit.tenant_id:
        limit.tenant = limit.api_key.tenant


def limit_create(model: type[LimitScope], allowed: tuple[str, ...], fields: dict[str, Any]) -> Any:
    limit = model(**{k: v for k, v in fields.items() if k in allowed})
    limit_scope_complete(limit)
    limit.save()
    # This worker's guard sees the change at once; the others within their policy TTL.
    transaction.on_commit(policy_cache_clear)
    return limit


def limit_update(limit: Budget | RateLimit, fields: dict[str, Any]) -> Any:
    allowed = BUDGET_FIELDS if isinstance(limit, Budget) else RATE_LIMIT_FIELDS
    for name, value in fields.items():
        if name in allowed:
            setattr(limit, name, value)
    limit_scope_complete(limit)
    limit.save()
    transaction.on_commit(policy_cache_clear)
    return limit


def limit_delete(limit: Budget | RateLimit) -> None:
    # A budget's alerts stay, unlinked: they are history.
    limit.delete()
    transaction.on_commit(policy_cache_clear)


def budget_create(**fields: Any) -> Budget:
    return limit_create(Budget, BUDGET_FIELDS, fields)


def rate_limit_create(**fields: Any) -> RateLimit:
    return limit_create(RateLimit, RATE_LIMIT_FIELDS, fields)


def budget_rollups(*, budget: Budget, start: datetime, end: datetime) -> QuerySet[UsageRollup]:
    """The aggregate rows a budget's spend is made of, for one of its periods."""
    grain = UsageRollup.Grain.HOUR if budget.period == HOUR else UsageRollup.Grain.DAY
    rows = UsageRollup.objects.filter(grain=grain, period_start__gte=start, period_start__lt=end)
    if budget.tenant_id:
        rows = rows.filter(tenant_id=budget.tenant_id)
    if budget.feature_id:
        rows = rows.filter(feature=budget.feature.key)
    if budget.model:
        rows = rows.filter(model=budget.model)
    if budget.prompt_template_id:
        rows = rows.filter(prompt_template=budget.prompt_template.key)
    return rows


def budget_spend(*, budget: Budget, start: datetime) -> Decimal:
    rows = budget_rollups(budget=budget, start=start, end=period_end(budget.period, start))
    return rows.aggregate(spend=ExactSum("cost"))["spend"] or Decimal(0)


def budget_spends(*, budget: Budget, start: datetime) -> dict[str, Decimal]:
    """A budget's spend for one of its periods, by end user for a budget on each end
    user (`*`), else under ''. The rollups hold no end users or keys: budgets naming
    either read the events, through their indexes."""
    if not budget.user and not budget.api_key_id:
        return {"": budget_spend(budget=budget, start=start)}
    each_user = budget.user == EACH_USER
    scope = limit_scope(budget, period=budget.period, at=start,
                        user=None if each_user else (budget.user or None))  # fmt: skip
    events = scope_events(scope)
    if each_user:
        rows = events.exclude(user="").values_list("user").annotate(spend=ExactSum("cost"))
        return {user: spend or Decimal(0) for user, spend in rows}
    return {"": events.aggregate(spend=ExactSum("cost"))["spend"] or Decimal(0)}


@dataclass(slots=True)
class BudgetCheck:
    budgets: int = 0
    alerts: int = 0


def budgets_evaluate(*, now: datetime) -> BudgetCheck:
    """Raise an alert for each threshold crossed in the current and the previous period
    (a period's last spend may be rolled up after it ends); each only once."""
    result = BudgetCheck()
    budgets = Budget.objects.select_related("tenant", "feature", "prompt_template", "api_key")
    for budget in budgets:
        result.budgets += 1
        current = period_start(budget.period, now)
        previous = period_start(budget.period, current - timedelta(seconds=1))
        for start in (previous, current):
            for user, spend in budget_spends(budget=budget, start=start).items():
                result.alerts += _thresholds_alert(budget, start, spend, now, user)
    return result


def _thresholds_alert(
    budget: Budget, start: datetime, spend: Decimal, now: datetime, user: str
) -> int:
    raised = 0
    for threshold in sorted(set(budget.thresholds)):
        if spend * 100 < budget.amount * threshold:
            break
        if _threshold_alert(budget, start, threshold, spend, now, user):
            raised += 1
    return raised


def threshold_severity(budget: Budget, threshold: int) -> str:
    """Below 100 percent a notice; at 100 a warning, critical when the guard now blocks."""
    if threshold < 100:
        return Alert.Severity.INFO
    if budget.action == Budget.Action.BLOCK:
        return Alert.Severity.CRITICAL
    return Alert.Severity.WARNING


def _threshold_alert(
    budget: Budget, start: datetime, threshold: int, spend: Decimal, now: datetime, user: str = ""
) -> Alert | None:
    currency = budget.tenant.billing_currency if budget.tenant_id else "USD"
    percent = (spend * 100 / budget.amount).quantize(Decimal(1)) if budget.amount else 0
    action = ""
    if threshold >= 100 and budget.action != Budget.Action.NOTIFY:
        action = f" Its action at 100% is {budget.action}."
    whose = f" for end user {user}" if user else ""
    # One alert per end user of a budget on each of them; the key stays short.
    per_user = f":{hashlib.sha256(user.encode()).hexdigest()[:16]}" if user else ""
    message = (
        f"Budget {budget} ({budget.scope_label}){whose}: {percent}% of "
        f"{money_format(budget.amount, currency)} spent for "
        f"{period_label(budget.period, start)} ({money_format(spend, currency)}); "
        f"threshold {threshold}% crossed.{action}"
    )
    with transaction.atomic():
        return alert_raise(
            kind=Alert.Kind.BUDGET_THRESHOLD,
            dedup_key=f"budget:{budget.id}:{start:%Y%m%dT%H}:{threshold}{per_user}",
            message=message,
            now=now,
            severity=threshold_severity(budget, threshold),
            tenant=budget.tenant,
            feature=budget.feature.key if budget.feature_id else "",
            model=budget.model,
            prompt_template=budget.prompt_template.key if budget.prompt_template_id else "",
            budget_id=budget.id,
            period_start=start,
            threshold=threshold,
            value=spend,
        )
