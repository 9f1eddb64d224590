"""Seeding a counter from the ledger, meeting the increments without double counting.

A seed computes the counter from PostgreSQL in one statement and keeps that statement's
snapshot beside the value; an increment carries its transaction id and is applied only
if the snapshot did not already see that transaction. Before computing, a seed leaves a
marker; increments that find the marker but no counter wait in a pending list, which the
seed applies (by the same rule) when it installs its value. An increment that finds
neither was committed before the marker, so the seed's snapshot sees it. The seed also
installs the reservations recorded on the counter in PostgreSQL (`reservations`) that
its snapshot saw, less those released meanwhile, so calls in flight outlive a Redis
that lost its state. Counters expire
(FINOPS_GUARD_COUNTER_TTL) and are seeded again, so an increment lost to a Redis outage
is healed within that time.
"""

from __future__ import annotations

import secrets

import redis
from django.conf import settings

from .amounts import to_limbs
from .ledger import ledger_seed
from .redis import scripts
from .scopes import Scope

_TRIES = 10


class SeedLost(redis.RedisError):
    """Redis kept losing the counter while it was seeded (its state is being emptied
    faster than a seed completes): the guard answers from the ledger meanwhile."""


def counter_seed(scope: Scope) -> None:
    """Install the counter of `scope` from the ledger (no-op if it exists)."""
    token = secrets.token_hex(8)
    for _ in range(_TRIES):
        current = scripts().seed_begin(args=[scope.name, scope.shape, token])
        if not current:
            return
        spend, snapshot, reserved = ledger_seed(scope)
        ttl = settings.FINOPS_GUARD_COUNTER_TTL * 1000
        reservations_ttl = 2 * settings.FINOPS_GUARD_RESERVATION_TTL * 1000
        installed = scripts().seed_install(
            args=[
                scope.name,
                current,
                to_limbs(spend),
                snapshot,
                ttl,
                reserved,
                reservations_ttl,
            ]  # fmt: skip
        )
        if installed:
            return
    raise SeedLost(f"could not seed the guard counter {scope.name}")
