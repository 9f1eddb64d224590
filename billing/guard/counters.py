"""Checking limits against the hot counters: exact spend plus what is in flight.

A counter holds the exact spend (or tokens) of one scope (see `scopes`) in Redis, seeded
from the ledger (`seeding`) and kept current by every transaction that adds cost
(`increments`). Each call let through reserves its expected cost on every spend counter
it was checked against, under an id the guard answers; the call's event carries the id
back and releases exactly that reservation (`reservations`), or it expires. A check
counts spend plus reservations, so concurrent calls cannot all pass a limit that only
one of them fits. Request limits count the calls let through in their window, in the
same atomic step. Without Redis (or while it is down) the same check reads the ledger:
exact, without reservations or request counts.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings

from . import redis as guard_redis
from .amounts import from_limbs, from_nanos, limit_limbs, to_nanos
from .ledger import ledger_seed
from .reservations import reservation_forget, reservation_record
from .scopes import Scope, requests_name
from .seeding import SeedLost, counter_seed

log = logging.getLogger(__name__)

_TRIES = 5


# A spend counter (reserved on), a counter checked as it is (tokens), calls in a window.
SPEND, VALUE, REQUESTS = "s", "v", "r"


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One limit to check: on a spend (or token) counter, or on the calls let through
    in a window (`kind` REQUESTS, `limit` a count)."""

    scope: Scope
    limit: Decimal
    strict: bool  # True: reached when over the limit; False: at it
    blocking: bool
    kind: str = SPEND


@dataclass(frozen=True, slots=True)
class Checked:
    results: list[CheckResult]
    reservation: str | None  # the id the call's event releases; None: nothing reserved


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


def limits_check(items: list[CheckItem], *, reserve: Callable[[], Decimal]) -> Checked:
    """The hot counters' check when Redis is there, else the ledger's. `reserve` gives
    the cost to reserve (asked only when Redis is)."""
    if guard_redis.available():
        try:
            return counters_check(items, reserve=reserve())
        except SeedLost:
            # Redis is up but keeps losing its state: this call only reads the ledger.
            log.warning("guard: counters lost while seeded, answering from the ledger")
            return ledger_reserve(items, reserve())
        except redis.RedisError:
            guard_redis.mark_down()
            log.warning("guard: Redis unavailable, answering from the ledger", exc_info=True)
            if guard_redis.enabled():
                return ledger_reserve(items, reserve())
    return Checked(ledger_check(items), None)


def ledger_reserve(items: list[CheckItem], reserve: Decimal) -> Checked:
    """The ledger's check while Redis cannot be used, with the call's reservation still
    recorded in PostgreSQL, so the counters count it in flight once Redis is back. Not
    atomic: concurrent calls checked this way can pass a limit by more than one call."""
    results = ledger_check(items)
    spends = [item.scope.name for item in items if item.kind == SPEND]
    nanos = to_nanos(reserve)
    refused = any(r.hit and item.blocking for item, r in zip(items, results, strict=True))
    if refused or not spends or nanos == 0:
        return Checked(results, None)
    reservation = secrets.token_hex(8)
    reservation_record(reservation, spends, nanos, _expiry_ms())
    return Checked(results, reservation)


def _expiry_ms() -> int:
    """When a reservation made now stops counting (Unix milliseconds)."""
    return int(time.time() * 1000) + settings.FINOPS_GUARD_RESERVATION_TTL * 1000


def counters_check(items: list[CheckItem], *, reserve: Decimal) -> Checked:
    """Check every limit against spend plus reservations (or its window's calls) and,
    unless a blocking limit is hit, reserve `reserve` on the spend counters and count
    the call in the windows, atomically. The reservation is recorded in PostgreSQL
    first (`reservations`) and forgotten there if the check reserved nothing."""
    reservation = secrets.token_hex(8)
    nanos = to_nanos(reserve)
    ttl_ms = settings.FINOPS_GUARD_RESERVATION_TTL * 1000
    expires_ms = _expiry_ms()
    spends = [item.scope.name for item in items if item.kind == SPEND]
    recorded = nanos > 0 and bool(spends)
    if recorded:
        reservation_record(reservation, spends, nanos, expires_ms)
    args: list[Any] = [reservation, nanos, expires_ms, 2 * ttl_ms, len(items)]
    for item in items:
        args += _item_args(item)
    try:
        reply = _check_seeded(items, args)
    except BaseException:
        if recorded:
            reservation_forget(reservation)
        raise
    reserved = reply[1] == 1
    if recorded and not reserved:
        reservation_forget(reservation)
    results = [
        CheckResult(reply[2 + 3 * i] == 1, _value(item, reply[3 + 3 * i]), reply[4 + 3 * i])
        for i, item in enumerate(items)
    ]
    return Checked(results, reservation if reserved else None)


def _item_args(item: CheckItem) -> list[Any]:
    strict, blocking = int(item.strict), int(item.blocking)
    if item.kind == REQUESTS:
        window_ms = int((item.scope.end - item.scope.start).total_seconds() * 1000)
        return [REQUESTS, requests_name(item.scope), int(item.limit), strict, blocking,
                window_ms]  # fmt: skip
    return [item.kind, item.scope.name, limit_limbs(item.limit), strict, blocking, 0]


def _check_seeded(items: list[CheckItem], args: list[Any]) -> Any:
    for _ in range(_TRIES):
        reply = guard_redis.check_run(args)
        if reply[0] != b"seed":
            return reply
        for index in reply[1:]:
            counter_seed(items[int(index) - 1].scope)
    raise SeedLost("guard counters kept disappearing while being checked")


def _value(item: CheckItem, value: bytes) -> Decimal | bytes:
    return Decimal(int(value)) if item.kind == REQUESTS else value


def ledger_check(items: list[CheckItem]) -> list[CheckResult]:
    """The same check straight from the ledger, with the reservations recorded beside
    it that have not expired; nothing is reserved (calls let through are not counted
    without Redis, so request limits never hit)."""
    results = []
    now_ms = int(time.time() * 1000)
    for item in items:
        if item.kind == REQUESTS:
            results.append(CheckResult(hit=False, spend=Decimal(0), reserved=Decimal(0)))
            continue
        spend, _, recorded = ledger_seed(item.scope)
        reserved = from_nanos(_live_nanos(recorded, now_ms))
        total = spend + reserved
        hit = total > item.limit if item.strict else total >= item.limit
        results.append(CheckResult(hit=hit, spend=spend, reserved=reserved))
    return results


def _live_nanos(recorded: str, now_ms: int) -> int:
    """The reservations (`id:nanos:expires_ms,...`) that have not expired."""
    total = 0
    for entry in filter(None, recorded.split(",")):
        _, nanos, expires = entry.split(":")
        if int(expires) > now_ms:
            total += int(nanos)
    return total


def counter_value(name: str) -> Decimal | None:
    """The counter's spend as Redis holds it (None if not seeded)."""
    value = guard_redis.client().hget(f"g:s:{name}", "v")
    return None if value is None else from_limbs(value)


def reserved_nanos(name: str) -> int:
    return int(guard_redis.client().get(f"g:rt:{name}") or 0)
