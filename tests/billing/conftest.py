from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing.guard import policy_cache_clear
from billing.guard import redis as guard_redis


@pytest.fixture
def fresh_guard(settings) -> Iterator[None]:
    """Policies read afresh on every decision, Redis taken as up, the guard's counters
    flushed before and after."""
    settings.FINOPS_GUARD_POLICY_TTL = 0
    policy_cache_clear()
    guard_redis.mark_up()
    redis_db = guard_redis.client() if guard_redis.enabled() else None
    if redis_db:
        guard_redis.flush(redis_db)
    yield
    if redis_db:
        guard_redis.flush(redis_db)
