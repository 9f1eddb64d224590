"""Writes of the core: tenants, API keys and prices."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .models import BEGINNING_OF_TIME, ApiKey, ModelPrice, PriceRate, Tenant
from .pricing.litellm_map import PriceImportResult
from .pricing.rules import frozen_rules
from .selectors import price_is_used

KEY_PREFIX_BYTES = 6
KEY_SECRET_BYTES = 24


def key_digest(key: str) -> str:
    # Keys carry 192 random bits, so a fast hash is enough; no password stretching.
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_create(
    *,
    slug: str,
    name: str = "",
    tier: str = Tenant.Tier.FREE,
    monthly_cap: Decimal | None = None,
    predicted_ltv: Decimal | None = None,
    monthly_revenue: Decimal | None = None,
    signup_at: datetime | None = None,
    billing_currency: str = "USD",
    markup_percent: Decimal = Decimal(0),
) -> Tenant:
    tenant = Tenant(
        slug=slug,
        name=name or slug,
        tier=tier,
        monthly_cap=monthly_cap,
        predicted_ltv=predicted_ltv,
        monthly_revenue=monthly_revenue,
        signup_at=signup_at or timezone.now(),
        billing_currency=billing_currency,
        markup_percent=markup_percent,
    )
    tenant.full_clean()
    tenant.save()
    return tenant


def apikey_create(
    *, tenant: Tenant | None, scopes: Iterable[str], name: str = ""
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored."""
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(ApiKey.Scope.values)}")
    with transaction.atomic():
        while True:
            prefix = secrets.token_hex(KEY_PREFIX_BYTES)
            if not ApiKey.objects.filter(prefix=prefix).exists():
                break
        plaintext = f"fo_{prefix}_{secrets.token_urlsafe(KEY_SECRET_BYTES)}"
        key = ApiKey.objects.create(
            tenant=tenant, name=name, prefix=prefix, digest=key_digest(plaintext), scopes=scopes
        )
    return key, plaintext


def apikey_revoke(*, key: ApiKey, now: datetime | None = None) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


# --- Management API: tenants and prices -------------------------------------------------


class TenantHasHistory(Exception):
    """The tenant has usage or statements: it is closed (status), never deleted."""


def tenant_update(*, tenant: Tenant, **changes: object) -> Tenant:
    """Change a tenant's contract fields (tier, caps, LTV, markup, status, ...); the
    model's own validation applies. Keys cached in this process are forgotten on save."""
    for name, value in changes.items():
        setattr(tenant, name, value)
    tenant.full_clean()
    tenant.save()
    return tenant


def tenant_delete(*, tenant: Tenant) -> None:
    """Delete a tenant that never had usage (a mistyped slug); its keys, budgets and caps
    go with it. A tenant with events, rollups or statements is history: TenantHasHistory
    (the rows that bill it are PROTECTed)."""
    from django.db import IntegrityError
    from django.db.models import ProtectedError, RestrictedError

    try:
        with transaction.atomic():
            tenant.delete()
    except (ProtectedError, RestrictedError, IntegrityError):
        raise TenantHasHistory(tenant.slug) from None


class PriceInUse(Exception):
    """The price row has priced events or statement lines: it never changes."""


def price_create(
    *,
    model: str,
    effective_from: datetime | None = None,
    rates: Iterable[Mapping[str, Any]] = (),
    **columns: Any,
) -> ModelPrice:
    """A new effective-dated price row with its other rates, validated as the admin
    validates it, the vendor's rules of the day frozen with it. Without `effective_from`
    only a model's first price: it applies to all of the model's history."""
    with transaction.atomic():
        if effective_from is None:
            if ModelPrice.objects.filter(model=model).exists():
                raise ValidationError(
                    {"effective_from": f"Required: {model} has prices; a change starts at a "
                                       "stated instant (a new row)."}
                )  # fmt: skip
            effective_from = BEGINNING_OF_TIME
        if ModelPrice.objects.filter(model=model, effective_from=effective_from).exists():
            raise ValidationError(
                {"effective_from": f"{model} has a price starting at this instant."}
            )
        price = ModelPrice(model=model, effective_from=effective_from, **columns)
        price.rules = frozen_rules(price.provider, price.model)
        price.full_clean()
        price.save()
        rows = [PriceRate(price=price, **rate) for rate in rates]
        for row in rows:
            row.full_clean()
        PriceRate.objects.bulk_create(rows)
    return price


def price_delete(*, price: ModelPrice) -> None:
    """Delete a row that has priced nothing (a mistake); a used row: PriceInUse."""
    from django.db.models import ProtectedError

    if price_is_used(price=price):
        raise PriceInUse(price.pk)
    try:
        with transaction.atomic():
            price.delete()
    except ProtectedError:
        raise PriceInUse(price.pk) from None


def price_import_reasons(result: PriceImportResult) -> list[tuple[str, int]]:
    """The skipped entries' reasons with their counts, most frequent first (as the
    command prints them)."""
    reasons: dict[str, int] = {}
    for reason in result.skipped.values():
        key = reason.split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
