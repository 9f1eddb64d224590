"""Checking limits against the hot counters: exact spend plus what is in flight.

A counter holds the exact spend of one scope (see `scopes`) in Redis, seeded from the
ledger (`seeding`) and kept current by every transaction that adds cost (`increments`).
Each allowed call reserves its expected cost on every counter it was checked against,
until its event arrives (the oldest reservation of the same tenant, feature and model is
released) or the reservation expires. A check counts spend plus reservations, so
concurrent calls cannot all pass a limit that only one of them fits. Without Redis (or
while it is down) the same check reads the ledger: exact, without reservations.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings

from . import redis as guard_redis
from .amounts import from_limbs, from_nanos, limit_limbs, to_nanos
from .ledger import ledger_spend
from .scopes import Scope
from .seeding import counter_seed

log = logging.getLogger(__name__)

_TRIES = 5


@dataclass(frozen=True, slots=True)
class CheckItem:
    scope: Scope
    limit: Decimal
    strict: bool  # True: reached when over the limit; False: at it
    blocking: bool


class CheckResult:
    """One limit's check: whether it is reached, its committed spend and what is in
    flight. The figures are read from Redis's reply only when asked for: the guard
    needs them for the limits that are reached, to say why."""

    __slots__ = ("hit", "_spend", "_reserved")

    def __init__(self, hit: bool, spend: Decimal | bytes, reserved: Decimal | int) -> None:
        self.hit = hit
        self._spend = spend  # a Decimal, or limbs as Redis holds them
        self._reserved = reserved  # a Decimal, or billionths

    @property
    def spend(self) -> Decimal:
        """Committed spend."""
        if not isinstance(self._spend, Decimal):
            self._spend = from_limbs(self._spend)
        return self._spend

    @property
    def reserved(self) -> Decimal:
        """In flight."""
        if not isinstance(self._reserved, Decimal):
            self._reserved = from_nanos(self._reserved)
        return self._reserved

    def __repr__(self) -> str:
        return f"CheckResult(hit={self.hit}, spend={self.spend}, reserved={self.reserved})"


def limits_check(
    items: list[CheckItem],
    *,
    reserve: Callable[[], Decimal],
    allow_queue: str,
    downgrade_queue: str,
) -> list[CheckResult]:
    """The hot counters' check when Redis is there, else the ledger's. `reserve` gives
    the cost to reserve (asked only when Redis is)."""
    if guard_redis.available():
        try:
            return counters_check(items, reserve=reserve(), allow_queue=allow_queue,
                                  downgrade_queue=downgrade_queue)  # fmt: skip
        except redis.RedisError:
            guard_redis.mark_down()
            log.warning("guard: Redis unavailable, answering from the ledger", exc_info=True)
    return ledger_check(items)


def counters_check(
    items: list[CheckItem], *, reserve: Decimal, allow_queue: str, downgrade_queue: str
) -> list[CheckResult]:
    """Check every limit against spend plus reservations and, unless a blocking limit
    is hit, reserve `reserve` on all of them, atomically. The reservation waits in
    `downgrade_queue` if a downgrading limit is hit, else in `allow_queue`."""
    args: list[Any] = [
        secrets.token_hex(8),
        to_nanos(reserve),
        settings.FINOPS_GUARD_RESERVATION_TTL * 1000,
        allow_queue,
        downgrade_queue,
        len(items),
    ]
    for item in items:
        args += [item.scope.name, limit_limbs(item.limit), int(item.strict), int(item.blocking)]
    for _ in range(_TRIES):
        reply = guard_redis.check_run(args)
        if reply[0] == b"seed":
            for index in reply[1:]:
                counter_seed(items[int(index) - 1].scope)
            continue
        return [
            CheckResult(reply[2 + 3 * i] == 1, reply[3 + 3 * i], reply[4 + 3 * i])
            for i in range(len(items))
        ]
    raise RuntimeError("guard counters kept disappearing while being checked")


def ledger_check(items: list[CheckItem]) -> list[CheckResult]:
    """The same check straight from the ledger (exact, no reservations)."""
    results = []
    for item in items:
        spend, _ = ledger_spend(item.scope)
        hit = spend > item.limit if item.strict else spend >= item.limit
        results.append(CheckResult(hit=hit, spend=spend, reserved=Decimal(0)))
    return results


def counter_value(name: str) -> Decimal | None:
    """The counter's spend as Redis holds it (None if not seeded)."""
    value = guard_redis.client().hget(f"g:s:{name}", "v")
    return None if value is None else from_limbs(value)


def reserved_nanos(name: str) -> int:
    return int(guard_redis.client().get(f"g:rt:{name}") or 0)
