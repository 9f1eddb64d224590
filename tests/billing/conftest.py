from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing import hotstate
from billing.guard import policy_cache_clear


@pytest.fixture
def fresh_guard(settings, monkeypatch) -> Iterator[None]:
    """Policies read afresh on every decision, Redis taken as up, the guard's counters
    flushed before and after."""
    settings.FINOPS_GUARD_POLICY_TTL = 0
    policy_cache_clear()
    monkeypatch.setattr(hotstate, "_down_until", 0.0)
    redis_db = hotstate.client() if hotstate.enabled() else None
    if redis_db:
        hotstate.flush(redis_db)
    yield
    if redis_db:
        hotstate.flush(redis_db)
