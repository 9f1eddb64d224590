"""The guard counters' exact arithmetic: Python's encoding and the Lua scripts' sums."""

from __future__ import annotations

import os
from decimal import Decimal, localcontext

import pytest
import redis
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.guard import counters
from billing.guard import redis as guard_redis
from billing.guard.amounts import from_limbs, to_limbs
from billing.guard.increments import Increment, increment_apply
from finops.money import EXACT

amounts = st.decimals(
    min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=30, allow_nan=False,
    allow_infinity=False,
)  # fmt: skip


@given(amounts)
def test_limbs_hold_any_ledger_amount_exactly(amount: Decimal) -> None:
    assert from_limbs(to_limbs(amount)) == amount


@pytest.fixture
def redis_db():
    if not settings.FINOPS_GUARD_REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    client = guard_redis.client()
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("Redis does not answer")
    guard_redis.flush(client)
    yield client
    guard_redis.flush(client)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=amounts.filter(lambda a: a >= 0), deltas=st.lists(amounts, max_size=30))
def test_lua_sums_are_exact(redis_db, start: Decimal, deltas: list[Decimal]) -> None:
    guard_redis.flush(redis_db)  # each example starts afresh
    name = "ltv:test:0:0"
    token = guard_redis.scripts().seed_begin(args=[name, "", "t"])
    # A snapshot that saw nothing at or above transaction 10: later increments count.
    assert guard_redis.scripts().seed_install(args=[name, token, to_limbs(start),
                                                 "10:10:", 60_000, "", 60_000]) == 1  # fmt: skip
    for xact, delta in enumerate(deltas, start=10):
        increment_apply(Increment(xact=xact, cells={}, direct={name: delta}, releases=[]))
    # One the snapshot saw is not added again.
    increment_apply(Increment(xact=9, cells={}, direct={name: Decimal(5)}, releases=[]))
    with localcontext(EXACT):
        expected = start + sum(deltas, Decimal(0))
    assert counters.counter_value(name) == expected


def test_increments_wait_for_a_seed_in_progress_and_apply_once(redis_db) -> None:
    name = "ltv:test:0:1"
    token = guard_redis.scripts().seed_begin(args=[name, "", "t"])
    # While the seed reads the ledger, transactions 20 (which its snapshot sees) and 21
    # (which it does not) commit and report.
    for xact in (20, 21):
        increment_apply(Increment(xact=xact, cells={}, direct={name: Decimal("1.5")}, releases=[]))
    assert counters.counter_value(name) is None
    installed = guard_redis.scripts().seed_install(
        args=[name, token, to_limbs(Decimal("10.5")), "21:22:21", 60_000, "", 60_000]
    )
    assert installed == 1
    assert counters.counter_value(name) == Decimal("12")
    # Without a seed in progress an increment is dropped: the next seed reads it.
    increment_apply(Increment(xact=30, cells={}, direct={"ltv:test:0:2": Decimal(1)}, releases=[]))
    assert counters.counter_value("ltv:test:0:2") is None
    assert not redis_db.exists("g:p:ltv:test:0:2")


def test_a_seed_whose_marker_was_flushed_does_not_install(redis_db) -> None:
    name = "ltv:test:0:3"
    token = guard_redis.scripts().seed_begin(args=[name, "", "t"])
    redis_db.flushdb()
    assert guard_redis.scripts().seed_install(args=[name, token, to_limbs(Decimal(1)),
                                                 "5:5:", 60_000, "", 60_000]) == 0  # fmt: skip
    assert counters.counter_value(name) is None


def test_a_forked_process_makes_its_own_check_connection(redis_db) -> None:
    """A worker forked from a process that already checked (a preloaded app) must not
    share that socket: two processes reading one connection would take each other's
    replies."""
    parent = guard_redis.check_connection()
    assert guard_redis.check_connection() is parent  # kept within a thread
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports, then leaves without running the parent's teardown
        ok = guard_redis.check_connection() is not parent
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_a_release_during_a_seed_is_not_undone_by_it(redis_db) -> None:
    """The seed's snapshot saw two reservations recorded; while it read, the event of
    one committed and released it. The seed installs only the other."""
    name = "ct-----:month:209901:1::::\x1f"
    token = guard_redis.scripts().seed_begin(args=[name, "ct-----:month", "t"])
    increment_apply(Increment(xact=40, cells={}, direct={}, releases=[(name, "aa:7")]))
    expires = int(redis_db.time()[0] * 1000) + 60_000
    recorded = f"aa:7:{expires},bb:5:{expires}"
    assert (
        guard_redis.scripts().seed_install(
            args=[name, token, to_limbs(Decimal(1)), "40:41:40", 60_000, recorded, 60_000]
        )
        == 1
    )
    assert counters.reserved_nanos(name) == 5
    assert redis_db.zrange(f"g:rz:{name}", 0, -1) == [b"bb:5"]
    # Released again after the install: gone, and counted down once.
    increment_apply(Increment(xact=41, cells={}, direct={}, releases=[(name, "bb:5")] * 2))
    assert counters.reserved_nanos(name) == 0
