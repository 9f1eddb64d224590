"""Budgets: their spend, read from the rollups, and the alerts at their thresholds."""

from __future__ import annotations

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
from .models import Alert, Budget, UsageRollup

BUDGET_FIELDS = ("name", "tenant", "feature", "model", "prompt_template", "period", "amount",
                 "thresholds", "action")  # fmt: skip


def budget_create(**fields: Any) -> Budget:
    budget = Budget(**{k: v for k, v in fields.items() if k in BUDGET_FIELDS})
    budget.save()
    return budget


def budget_update(*, budget: Budget, **fields: Any) -> Budget:
    for name, value in fields.items():
        if name in BUDGET_FIELDS:
            setattr(budget, name, value)
    budget.save()
    return budget


def budget_delete(*, budget: Budget) -> None:
    # Its alerts stay, unlinked: they are history.
    budget.delete()


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


@dataclass(slots=True)
class BudgetCheck:
    budgets: int = 0
    alerts: int = 0


def budgets_evaluate(*, now: datetime) -> BudgetCheck:
    """Raise an alert for each threshold crossed in the current and the previous period
    (a period's last spend may be rolled up after it ends); each only once."""
    result = BudgetCheck()
    budgets = Budget.objects.select_related("tenant", "feature", "prompt_template")
    for budget in budgets:
        result.budgets += 1
        current = period_start(budget.period, now)
        previous = period_start(budget.period, current - timedelta(seconds=1))
        for start in (previous, current):
            spend = budget_spend(budget=budget, start=start)
            for threshold in sorted(set(budget.thresholds)):
                if spend * 100 < budget.amount * threshold:
                    break
                if _threshold_alert(budget, start, threshold, spend, now):
                    result.alerts += 1
    return result


def _threshold_alert(
    budget: Budget, start: datetime, threshold: int, spend: Decimal, now: datetime
) -> Alert | None:
    currency = budget.tenant.billing_currency if budget.tenant_id else "USD"
    percent = (spend * 100 / budget.amount).quantize(Decimal(1)) if budget.amount else 0
    action = ""
    if threshold >= 100 and budget.action != Budget.Action.NOTIFY:
        action = f" Its action at 100% is {budget.action}."
    message = (
        f"Budget {budget} ({budget.scope_label}): {percent}% of "
        f"{money_format(budget.amount, currency)} spent for "
        f"{period_label(budget.period, start)} ({money_format(spend, currency)}); "
        f"threshold {threshold}% crossed.{action}"
    )
    with transaction.atomic():
        return alert_raise(
            kind=Alert.Kind.BUDGET_THRESHOLD,
            dedup_key=f"budget:{budget.id}:{start:%Y%m%dT%H}:{threshold}",
            message=message,
            now=now,
            tenant=budget.tenant,
            feature=budget.feature.key if budget.feature_id else "",
            model=budget.model,
            prompt_template=budget.prompt_template.key if budget.prompt_template_id else "",
            budget_id=budget.id,
            period_start=start,
            threshold=threshold,
            value=spend,
        )
