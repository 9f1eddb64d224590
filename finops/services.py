"""Writes of the core: tenants and API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .models import ApiKey, Tenant

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
