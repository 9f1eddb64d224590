"""The revenue side: what a tenant pays per month and its predicted lifetime value.

A tenant pays its own `monthly_revenue` when staff set one (in its billing currency),
else its tier's plan price (`TierPlan`, in the plan's currency). Its predicted lifetime
value is the one staff set, else derived from the plans: its monthly revenue times its
tier's `lifetime_months`, plus `upgrade_rate` times the lifetime value of the tier it
upgrades to (a free tier's only value). A derived value is compared with costs, which
are in the ledger's currency, so it exists only when every amount it is made of is in
that currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .models import Tenant, TierPlan


@dataclass(frozen=True, slots=True)
class Revenue:
    amount: Decimal
    currency: str
    source: str  # "tenant" (set on the tenant) or "plan" (its tier's plan price)


def tier_plans() -> dict[str, TierPlan]:
    return {plan.tier: plan for plan in TierPlan.objects.all()}


def monthly_revenue(tenant: Tenant, plans: dict[str, TierPlan] | None = None) -> Revenue | None:
    """What the tenant pays per month; None when neither it nor its tier has a price."""
    if tenant.monthly_revenue is not None:
        return Revenue(tenant.monthly_revenue, tenant.billing_currency, "tenant")
    plan = (tier_plans() if plans is None else plans).get(tenant.tier)
    if plan is None:
        return None
    return Revenue(plan.monthly_price, plan.currency, "plan")


def upgrade_chain(tier: str, plans: dict[str, TierPlan]) -> list[TierPlan]:
    """The plans a tenant of `tier` is valued on: its own, then each tier it upgrades to
    while the upgrade rate is above zero, each tier once (a cycle stops)."""
    chain: list[TierPlan] = []
    seen: set[str] = set()
    while tier in plans and tier not in seen:
        seen.add(tier)
        plan = plans[tier]
        chain.append(plan)
        if not plan.upgrade_rate or not plan.upgrades_to:
            break
        tier = plan.upgrades_to
    return chain


def plan_ltv(tier: str, plans: dict[str, TierPlan], *, monthly: Decimal | None = None) -> Decimal:
    """The lifetime value of a tenant of `tier` paying `monthly` (default: the plan's
    price); a tier without a plan is worth nothing, and an upgrade chain is followed
    once through each tier. Exact."""
    total, weight = Decimal(0), Decimal(1)
    for position, plan in enumerate(upgrade_chain(tier, plans)):
        price = monthly if position == 0 and monthly is not None else plan.monthly_price
        total += weight * price * plan.lifetime_months
        weight *= plan.upgrade_rate
    return total


def predicted_ltv(tenant: Tenant, plans: dict[str, TierPlan] | None = None) -> Decimal | None:
    """The tenant's predicted lifetime value, in the ledger's currency: the one staff
    set, else the plans'. None when neither exists, or when the derived value would mix
    in another currency (the tenant's own revenue in its billing currency, or a plan's):
    then there is nothing to throttle against."""
    if tenant.predicted_ltv is not None:
        return tenant.predicted_ltv
    plans = tier_plans() if plans is None else plans
    chain = upgrade_chain(tenant.tier, plans)
    ledger = settings.FINOPS_DEFAULT_CURRENCY
    if not chain or any(plan.currency != ledger for plan in chain):
        return None
    if tenant.monthly_revenue is not None and tenant.billing_currency != ledger:
        return None
    return plan_ltv(tenant.tier, plans, monthly=tenant.monthly_revenue)


# --- Writes: plans (the management API and the admin) ---------------------------------


class TierPlanExists(Exception):
    """The tier has a plan already: change it instead."""


def tier_plan_check(plan: TierPlan) -> None:
    """The rules of a plan beside its fields' own, as field errors (ValidationError): the
    database's constraints say the same, in words nobody reads."""
    errors: dict[str, str] = {}
    if plan.upgrade_rate is not None and not Decimal(0) <= plan.upgrade_rate <= Decimal(1):
        errors["upgrade_rate"] = "A share from 0 to 1 (0.05 is 5%)."
    if plan.upgrades_to and plan.upgrades_to == plan.tier:
        errors["upgrades_to"] = "A tier upgrades to another tier."
    if plan.upgrade_rate and not plan.upgrades_to:
        errors["upgrades_to"] = "Say which tier the upgrade rate is to."
    if not (len(plan.currency) == 3 and plan.currency.isascii() and plan.currency.isupper()):
        errors["currency"] = "Three capital letters (ISO 4217)."
    if errors:
        raise ValidationError(errors)


def _validated(plan: TierPlan) -> None:
    plan.full_clean(validate_unique=False, validate_constraints=False)
    tier_plan_check(plan)


def tier_plan_create(*, tier: str, **fields: Any) -> TierPlan:
    """A tier's plan, validated as the admin validates it. The guard sees it within
    FINOPS_GUARD_POLICY_TTL seconds."""
    plan = TierPlan(tier=tier, **fields)
    _validated(plan)
    if TierPlan.objects.filter(tier=tier).exists():
        raise TierPlanExists(tier)
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError:  # the same tier created at the same moment
        raise TierPlanExists(tier) from None
    return plan


def tier_plan_update(*, plan: TierPlan, **changes: Any) -> TierPlan:
    for name, value in changes.items():
        setattr(plan, name, value)
    _validated(plan)
    plan.save()
    return plan


def tier_plan_delete(*, plan: TierPlan) -> None:
    """Without a plan, a tier's tenants have no revenue unless set on them, and no
    derived lifetime value."""
    plan.delete()
