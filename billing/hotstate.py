"""The guard's hot state: exact spend counters and in-flight reservations in Redis.

A counter holds the exact spend of one scope (tenant, feature, prompt template, model,
in any combination) for one period, or of a free-tier tenant's first 30 days. It is
seeded from the ledger and then kept current by every transaction that adds cost, right
after it commits. Seeding and increments meet without double counting or loss:

* A seed computes the counter from PostgreSQL in one statement and keeps that
  statement's snapshot beside the value. An increment carries its transaction id and is
  applied only if the snapshot did not already see that transaction.
* Before computing, a seed leaves a marker; increments that find the marker but no
  counter wait in a pending list, which the seed applies (by the same rule) when it
  installs its value. An increment that finds neither was committed before the marker,
  so the seed's snapshot sees it.
* Counters expire (FINOPS_GUARD_COUNTER_TTL) and are seeded again, so an increment lost
  to a Redis outage is healed within that time.

Amounts are exact: an amount is an integer number of 1e-30 units (the ledger's scale),
kept as four base-10^12 limbs that Lua adds with carries inside double precision.

Reservations: each allowed call reserves its expected cost on every counter it was
checked against, until its event arrives (the oldest reservation of the same tenant,
feature and model is released) or the reservation expires. A check counts spend plus
reservations, so concurrent calls cannot all pass a limit that only one of them fits.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, localcontext
from functools import cache, lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from finops.fields import ExactSum
from finops.money import EXACT
from ingestion.models import CostChange, UsageEvent

from . import lua
from .models import RollupWatermark, UsageRollup
from .rollups import WATERMARK

log = logging.getLogger(__name__)

SCALE = 30
_BASE = 10**12
_NANO = Decimal("1e-9")


# --- Amounts --------------------------------------------------------------------------


def to_limbs(amount: Decimal) -> str:
    """`amount` as exact 1e-30 units in four limbs (rounded up past the 30th place,
    which no ledger amount has)."""
    units = amount.scaleb(SCALE, EXACT).to_integral_value(rounding=ROUND_CEILING)
    n = int(units)
    return f"{n % _BASE},{n // _BASE % _BASE},{n // _BASE**2 % _BASE},{n // _BASE**3}"


def from_limbs(text: str | bytes) -> Decimal:
    if isinstance(text, bytes):
        text = text.decode()
    limbs = [int(part) for part in text.split(",")]
    n = sum(limb * _BASE**i for i, limb in enumerate(limbs))
    return Decimal(n).scaleb(-SCALE, EXACT)


def to_nanos(amount: Decimal) -> int:
    """A reservation, in whole billionths rounded up: an estimate needs no more."""
    return int((amount / _NANO).to_integral_value(rounding=ROUND_CEILING))


# --- Counters -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a counter sums: the ledger's cost of events in [start, end) that match
    every dimension given. `shape` names which dimensions (and the period) a calendar
    counter has; window counters (a free-tier tenant's first 30 days) have none."""

    name: str
    shape: str
    start: datetime
    end: datetime
    grain: str | None  # the rollup grain the period is made of; None: events only
    tenant_id: int | None = None
    feature: tuple[int, str] | None = None  # (id, key)
    prompt_template: tuple[int, str] | None = None  # (id, key)
    model: str | None = None


_PERIOD_FORMAT = {"hour": "%Y%m%d%H", "day": "%Y%m%d", "month": "%Y%m"}


@lru_cache(maxsize=4096)
def calendar_scope(
    *,
    period: str,
    start: datetime,
    end: datetime,
    tenant_id: int | None = None,
    feature: tuple[int, str] | None = None,
    prompt_template: tuple[int, str] | None = None,
    model: str | None = None,
) -> Scope:
    """A counter of one calendar period. Its name is built exactly as the increment
    script builds it from an event (see `lua.APPLY`): shape, period, then the dimensions
    in the order tenant, feature, prompt template, model (the only free text, last).
    Scopes are immutable, so the guard's repeated ones are built once."""
    dims = "".join(
        flag if value is not None else "-"
        for flag, value in (("t", tenant_id), ("f", feature), ("p", prompt_template), ("m", model))
    )
    shape = f"{dims}:{period}"
    name = ":".join(
        [
            shape,
            start.astimezone(UTC).strftime(_PERIOD_FORMAT[period]),
            "" if tenant_id is None else str(tenant_id),
            "" if feature is None else str(feature[0]),
            "" if prompt_template is None else str(prompt_template[0]),
            "" if model is None else model,
        ]
    )
    grain = UsageRollup.Grain.HOUR if period == "hour" else UsageRollup.Grain.DAY
    return Scope(name, shape, start, end, grain, tenant_id, feature, prompt_template, model)


@lru_cache(maxsize=1024)
def window_scope(*, tenant_id: int, start: datetime, end: datetime) -> Scope:
    """A tenant's spend in a window that need not align with hours (its free days)."""
    name = f"ltv:{tenant_id}:{int(start.timestamp() * 1_000_000)}:{int(end.timestamp())}"
    return Scope(name, "", start, end, None, tenant_id)


# --- The ledger's figure for a scope --------------------------------------------------


def _event_filters(scope: Scope, alias: str) -> tuple[str, dict[str, Any]]:
    sql, params = [], {}
    if scope.tenant_id is not None:
        sql.append(f"{alias}.tenant_id = %(tenant)s")
        params["tenant"] = scope.tenant_id
    if scope.feature is not None:
        sql.append(f"{alias}.feature_id = %(feature_id)s")
        params["feature_id"] = scope.feature[0]
    if scope.prompt_template is not None:
        sql.append(f"{alias}.prompt_template_id = %(prompt_id)s")
        params["prompt_id"] = scope.prompt_template[0]
    if scope.model is not None:
        sql.append(f"{alias}.model = %(model)s")
        params["model"] = scope.model
    sql.append(f"{alias}.timestamp >= %(start)s AND {alias}.timestamp < %(end)s")
    params.update(start=scope.start, end=scope.end)
    return " AND ".join(sql), params


def _rollup_filters(scope: Scope) -> tuple[str, dict[str, Any]]:
    sql = ["r.grain = %(grain)s", "r.period_start >= %(start)s", "r.period_start < %(end)s"]
    params: dict[str, Any] = {"grain": scope.grain}
    if scope.tenant_id is not None:
        sql.append("r.tenant_id = %(tenant)s")
    if scope.feature is not None:
        sql.append("r.feature = %(feature_key)s")
        params["feature_key"] = scope.feature[1]
    if scope.prompt_template is not None:
        sql.append("r.prompt_template = %(prompt_key)s")
        params["prompt_key"] = scope.prompt_template[1]
    if scope.model is not None:
        sql.append("r.model = %(model)s")
    return " AND ".join(sql), params


def ledger_spend(scope: Scope) -> tuple[Decimal, str | None]:
    """The scope's exact spend in the ledger, and on PostgreSQL the snapshot it was read
    in (`xmin:xmax:xip,...`). Calendar scopes read the rollups up to their watermark and
    the events and cost changes above it; nothing is scanned twice or missed."""
    if connection.vendor == "postgresql":
        return _ledger_spend_postgresql(scope)
    with transaction.atomic():  # one read snapshot
        return _ledger_spend_generic(scope), None


def _ledger_spend_postgresql(scope: Scope) -> tuple[Decimal, str | None]:
    events_sql, params = _event_filters(scope, "e")
    with connection.cursor() as cursor:
        if scope.grain is None:
            cursor.execute(
                "SELECT pg_current_snapshot()::text, COALESCE(sum(e.cost), 0) "
                f"FROM ingestion_usageevent e WHERE {events_sql}",
                params,
            )
            snapshot, spend = cursor.fetchone()
            return spend, snapshot
        rollup_sql, rollup_params = _rollup_filters(scope)
        params.update(rollup_params)
        for _ in range(5):
            mark = RollupWatermark.objects.filter(name=WATERMARK).values_list(
                "events_position", "changes_position"
            )
            params["low_events"], params["low_changes"] = mark.first() or (0, 0)
            # One statement, one snapshot. The watermark is passed as a literal so the
            # planner reads only the ledger's tail by its transaction ids; the statement
            # reads it again and the loop retries if a rollup moved it meanwhile.
            cursor.execute(
                f"""
                SELECT pg_current_snapshot()::text,
                  (SELECT COALESCE(sum(r.cost), 0) FROM billing_usagerollup r
                    WHERE {rollup_sql}),
                  (SELECT COALESCE(sum(COALESCE(e.cost, 0) - COALESCE(
                      (SELECT sum(c.cost_delta) FROM ingestion_costchange c
                        WHERE c.event_id = e.id), 0)), 0)
                     FROM ingestion_usageevent e
                    WHERE e.xact >= %(low_events)s AND {events_sql}),
                  (SELECT COALESCE(sum(c.cost_delta), 0)
                     FROM ingestion_costchange c
                     JOIN ingestion_usageevent e ON e.id = c.event_id
                    WHERE c.xact >= %(low_changes)s AND {events_sql}),
                  (SELECT events_position::text || ':' || changes_position::text
                     FROM billing_rollupwatermark WHERE name = %(watermark)s)
                """,
                {**params, "watermark": WATERMARK},
            )
            snapshot, folded, events, changes, seen = cursor.fetchone()
            if seen in (None, f"{params['low_events']}:{params['low_changes']}"):
                with localcontext(EXACT):
                    return folded + events + changes, snapshot
        raise RuntimeError("the rollup watermark kept moving while a counter was read")


def _ledger_spend_generic(scope: Scope) -> Decimal:
    q = Q(timestamp__gte=scope.start, timestamp__lt=scope.end)
    if scope.tenant_id is not None:
        q &= Q(tenant_id=scope.tenant_id)
    if scope.feature is not None:
        q &= Q(feature_id=scope.feature[0])
    if scope.prompt_template is not None:
        q &= Q(prompt_template_id=scope.prompt_template[0])
    if scope.model is not None:
        q &= Q(model=scope.model)
    if scope.grain is None:
        return UsageEvent.objects.filter(q).aggregate(s=ExactSum("cost"))["s"] or Decimal(0)
    # Without transaction ids (SQLite runs one writer at a time), positions are row ids.
    mark = RollupWatermark.objects.filter(name=WATERMARK).first()
    low_events = mark.events_position if mark else 0
    low_changes = mark.changes_position if mark else 0
    rollups = UsageRollup.objects.filter(
        grain=scope.grain, period_start__gte=scope.start, period_start__lt=scope.end
    )
    if scope.tenant_id is not None:
        rollups = rollups.filter(tenant_id=scope.tenant_id)
    if scope.feature is not None:
        rollups = rollups.filter(feature=scope.feature[1])
    if scope.prompt_template is not None:
        rollups = rollups.filter(prompt_template=scope.prompt_template[1])
    if scope.model is not None:
        rollups = rollups.filter(model=scope.model)
    zero = Decimal(0)
    folded = rollups.aggregate(s=ExactSum("cost"))["s"] or zero
    tail = UsageEvent.objects.filter(q, id__gt=low_events)
    tail_cost = tail.aggregate(s=ExactSum("cost"))["s"] or zero
    # The tail's events count as inserted: their cost changes are added below (or were
    # folded already).
    tail_changes = (
        CostChange.objects.filter(event__in=tail.values("id")).aggregate(s=ExactSum("cost_delta"))[
            "s"
        ]
        or zero
    )
    event_q = Q(**{f"event__{k}": v for k, v in _q_kwargs(scope).items()})
    changes = (
        CostChange.objects.filter(event_q, id__gt=low_changes).aggregate(s=ExactSum("cost_delta"))[
            "s"
        ]
        or zero
    )
    with localcontext(EXACT):
        return folded + tail_cost - tail_changes + changes


def _q_kwargs(scope: Scope) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"timestamp__gte": scope.start, "timestamp__lt": scope.end}
    if scope.tenant_id is not None:
        kwargs["tenant_id"] = scope.tenant_id
    if scope.feature is not None:
        kwargs["feature_id"] = scope.feature[0]
    if scope.prompt_template is not None:
        kwargs["prompt_template_id"] = scope.prompt_template[0]
    if scope.model is not None:
        kwargs["model"] = scope.model
    return kwargs


# --- Redis ----------------------------------------------------------------------------


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=settings.FINOPS_GUARD_REDIS_TIMEOUT, socket_connect_timeout=1
    )


class _Scripts:
    def __init__(self, client: redis.Redis) -> None:
        self.apply = client.register_script(lua.APPLY)
        self.seed_begin = client.register_script(lua.SEED_BEGIN)
        self.seed_install = client.register_script(lua.SEED_INSTALL)
        self.check = client.register_script(lua.CHECK)


@cache
def _scripts(url: str) -> _Scripts:
    return _Scripts(_client(url))


# The guard's check, on every guarded call, runs on a connection of its own per thread,
# outside the pool: redis-py's pooled command path (the pool's lock and checks, retry
# and metrics wrappers) cost as much CPU as the round trip itself.
_line = threading.local()


def _forget_line() -> None:
    global _line
    _line = threading.local()


# A forked process (a gunicorn worker of a preloaded app) makes its own connections.
os.register_at_fork(after_in_child=_forget_line)


def _check_connection() -> Any:
    """This thread's connection for the check, made with the client's settings; it is
    closed when the thread ends. A new Redis URL makes a new one."""
    url = settings.FINOPS_GUARD_REDIS_URL
    conn = getattr(_line, "conn", None)
    if conn is None or _line.url != url:
        pool = client().connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        _line.conn, _line.url = conn, url
    return conn


def _run_check(args: list[Any]) -> Any:
    """EVALSHA of the check script on this thread's connection. As the pool does before
    it lends a connection, one the server closed (or with a stray reply) is reconnected
    first; after any failure but a script's error reply the connection is dropped, so no
    late reply is read as the next one's."""
    conn = _check_connection()
    script = scripts().check
    try:
        try:
            if conn.can_read():
                raise redis.ConnectionError("a reply nobody asked for")
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            conn.connect()
        conn.send_command("EVALSHA", script.sha, 0, *args)
        return conn.read_response()
    except redis.exceptions.NoScriptError:  # the server lost its scripts: load, run again
        return script(args=args)
    except redis.ResponseError:
        raise
    except BaseException:
        conn.disconnect()
        raise


def enabled() -> bool:
    """Hot state needs Redis and PostgreSQL's transaction ids; without them the guard
    reads the ledger (exact, without reservations)."""
    return bool(settings.FINOPS_GUARD_REDIS_URL) and connection.vendor == "postgresql"


_down_until = 0.0
DOWN_PAUSE_SECONDS = 5.0


def available() -> bool:
    """False for a few seconds after Redis failed in this process, so that an outage
    costs one timeout, not one per request."""
    return enabled() and time.monotonic() >= _down_until


def mark_down() -> None:
    global _down_until
    _down_until = time.monotonic() + DOWN_PAUSE_SECONDS


def client() -> redis.Redis:
    return _client(settings.FINOPS_GUARD_REDIS_URL)


def scripts() -> _Scripts:
    return _scripts(settings.FINOPS_GUARD_REDIS_URL)


def queue_name(tenant_id: int, feature_key: str, model: str) -> str:
    return f"g:q:{tenant_id}:{feature_key}\x1f{model}"


# --- Increments -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Increment:
    """What one committed transaction adds: per hour cell, per window counter, and how
    many new events of each (tenant, feature, model) settle reservations."""

    xact: int
    cells: dict[tuple[int, str, str, str, str], Decimal]
    direct: dict[str, Decimal]
    releases: dict[str, int]


def increment_apply(inc: Increment) -> None:
    args: list[Any] = [inc.xact, len(inc.cells)]
    for (tenant, feature, prompt, model, hour), amount in inc.cells.items():
        args += [tenant, feature, prompt, model, hour, to_limbs(amount)]
    args.append(len(inc.direct))
    for name, amount in inc.direct.items():
        args += [name, to_limbs(amount)]
    args.append(len(inc.releases))
    for queue, count in inc.releases.items():
        args += [queue, count]
    scripts().apply(args=args)


def counter_seed(scope: Scope) -> None:
    """Install the counter of `scope` from the ledger (no-op if it exists)."""
    token = secrets.token_hex(8)
    for _ in range(5):
        current = scripts().seed_begin(args=[scope.name, scope.shape, token])
        if not current:
            return
        spend, snapshot = ledger_spend(scope)
        ttl = settings.FINOPS_GUARD_COUNTER_TTL * 1000
        installed = scripts().seed_install(
            args=[scope.name, current, to_limbs(spend), snapshot, ttl]
        )
        if installed:
            return
    raise RuntimeError(f"could not seed the guard counter {scope.name}")


def counter_value(name: str) -> Decimal | None:
    """The counter's spend as Redis holds it (None if not seeded)."""
    value = client().hget(f"g:s:{name}", "v")
    return None if value is None else from_limbs(value)


def reserved_nanos(name: str) -> int:
    return int(client().get(f"g:rt:{name}") or 0)


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
            self._reserved = Decimal(self._reserved) * _NANO
        return self._reserved

    def __repr__(self) -> str:
        return f"CheckResult(hit={self.hit}, spend={self.spend}, reserved={self.reserved})"


# The guard checks the same few limits again and again.
_limit_limbs = lru_cache(maxsize=1024)(to_limbs)


def counters_check(
    items: list[CheckItem], *, reserve: Decimal, allow_queue: str, downgrade_queue: str
) -> list[CheckResult]:
    """Check every limit against spend plus reservations and, unless a blocking limit
    is hit, reserve `reserve` on all of them, atomically."""
    args: list[Any] = [
        secrets.token_hex(8),
        to_nanos(reserve),
        settings.FINOPS_GUARD_RESERVATION_TTL * 1000,
        allow_queue,
        downgrade_queue,
        len(items),
    ]
    for item in items:
        args += [item.scope.name, _limit_limbs(item.limit), int(item.strict), int(item.blocking)]
    for _ in range(5):
        reply = _run_check(args)
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
    """The same check straight from the ledger (no Redis: exact, no reservations)."""
    results = []
    for item in items:
        spend, _ = ledger_spend(item.scope)
        hit = spend > item.limit if item.strict else spend >= item.limit
        results.append(CheckResult(hit=hit, spend=spend, reserved=Decimal(0)))
    return results


def flush(redis_client: redis.Redis | None = None) -> None:
    """Drop every guard key."""
    c = redis_client or client()
    for key in c.scan_iter(match="g:*", count=1000):
        c.delete(key)
