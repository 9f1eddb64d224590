"""Rate limits: requests, tokens or cost per window on a scope, enforced by the guard.
Written here; the guard reads them (`billing.guard.policies`)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .budgets import limit_scope_complete
from .guard.policies import policy_cache_clear
from .models import RateLimit

RATE_LIMIT_FIELDS = ("name", "tenant", "feature", "model", "prompt_template", "user", "api_key",
                     "window", "requests", "tokens", "cost")  # fmt: skip


def rate_limit_create(**fields: Any) -> RateLimit:
    rate_limit = RateLimit(**{k: v for k, v in fields.items() if k in RATE_LIMIT_FIELDS})
    limit_scope_complete(rate_limit)
    rate_limit.save()
    # This worker's guard sees the change at once; the others within their policy TTL.
    transaction.on_commit(policy_cache_clear)
    return rate_limit


def rate_limit_update(*, rate_limit: RateLimit, **fields: Any) -> RateLimit:
    for name, value in fields.items():
        if name in RATE_LIMIT_FIELDS:
            setattr(rate_limit, name, value)
    limit_scope_complete(rate_limit)
    rate_limit.save()
    transaction.on_commit(policy_cache_clear)
    return rate_limit


def rate_limit_delete(*, rate_limit: RateLimit) -> None:
    rate_limit.delete()
    transaction.on_commit(policy_cache_clear)
