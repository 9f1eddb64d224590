"""Folding the ledger into hourly and daily aggregates, incrementally and exactly once.

Each run reads only what committed since the last one and moves the watermark in the
same transaction as the aggregates, under a row lock: a re-run, a concurrent run or a
worker killed midway can neither count twice nor lose anything. Late events land in their
own hour; a late price reaches the aggregates as a `CostChange`.

PostgreSQL folds with a few SQL statements. Elsewhere (the embedded SQLite, whose SUM is
floating point) the fold runs in Python with `Decimal`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from finops.fields import ExactSum
from finops.money import EXACT
from ingestion.models import CostChange, UsageEvent

from .models import TOKEN_KINDS, DailyKey, FeatureRollup, RollupWatermark, UsageRollup

WATERMARK = "usage"
logger = logging.getLogger(__name__)
_CHUNK = 20_000

# Added up per group. The metric columns count what the events report: retrieval chunks,
# reranker runs, outcomes, the cost of calls with an outcome or in a session, sessions
# (each once per tenant and UTC day) and prompt hashes already sent that day.
METRIC_SUMS = (
    "chunks_retrieved", "chunks_used", "reranked_calls", "reranker_changed", "outcome_calls",
    "correct_calls", "outcome_cost", "session_cost", "sessions", "hashed_calls", "repeat_calls",
)  # fmt: skip
_SUMS = ("calls", "priced_calls", *TOKEN_KINDS, "cost", *METRIC_SUMS)
_GROUP = ("period_start", "tenant_id", "feature", "model", "prompt_template", "routing_tier")


@dataclass(slots=True)
class RollupResult:
    events: int = 0
    changes: int = 0
    rows: int = 0
    seconds: float = 0.0


def rollups_update(*, now: datetime | None = None) -> RollupResult:
    """Fold everything that committed since the last run."""
    return _fold(rebuild=False)


def rollups_rebuild() -> RollupResult:
    """Drop the aggregates and fold the whole ledger again."""
    return _fold(rebuild=True)


# On PostgreSQL, `DailyKey` is unlogged: a crash (or a restore from a base backup, or a
# promoted replica) leaves it empty. A row on this day, which no event has, says that the
# keys of every folded event are there; a run that misses it records them again first.
KEYS_WHOLE = date(9999, 12, 31)


def keys_kept_from() -> date:
    """No event older than the backfill window can arrive: the session and prompt keys of
    days before it (with two days to spare) are never looked up again."""
    return (timezone.now() - timedelta(days=settings.FINOPS_BACKFILL_DAYS + 2)).date()


def _fold(*, rebuild: bool) -> RollupResult:
    started = time.perf_counter()
    RollupWatermark.objects.get_or_create(name=WATERMARK)
    with transaction.atomic():
        # The row lock makes concurrent runs take turns; each reads the position the
        # previous one committed.
        mark = RollupWatermark.objects.select_for_update().get(name=WATERMARK)
        if rebuild:
            UsageRollup.objects.all().delete()
            FeatureRollup.objects.all().delete()
            if connection.vendor == "postgresql":
                # Only the rollups read the keys: no reader waits on this lock.
                with connection.cursor() as cursor:
                    cursor.execute("TRUNCATE billing_dailykey")
            else:
                DailyKey.objects.all().delete()
            mark.events_position = mark.changes_position = 0
        if connection.vendor == "postgresql":
            result = _fold_postgresql(mark)
        else:
            result = _fold_python(mark)
        oldest = DailyKey.objects.order_by("day").values_list("day", flat=True).first()
        if oldest is not None and oldest < keys_kept_from():
            DailyKey.objects.filter(day__lt=keys_kept_from()).delete()
        mark.updated_at = timezone.now()
        mark.save()
        committing = time.perf_counter()
    logger.debug("rollup %s: %d rows, %.3f s", "commit", 0, time.perf_counter() - committing)
    result.seconds = time.perf_counter() - started
    return result


# --- PostgreSQL ----------------------------------------------------------------------

_ZEROS_SQL = ", ".join(f"0 AS {k}" for k in TOKEN_KINDS)
_MONEY = ("cost", "outcome_cost", "session_cost")
# Counts are summed as bigint (PostgreSQL's sum of bigint is numeric): the next sum of
# them then adds 128-bit integers rather than numerics.
_SUMS_SQL = ", ".join(
    f"sum({k}) AS {k}" if k in _MONEY else f"sum({k})::bigint AS {k}" for k in _SUMS
)
_COLUMNS_SQL = ", ".join(("grain", *_GROUP, *_SUMS))
_ADD_SQL = ", ".join(f"{k} = billing_usagerollup.{k} + EXCLUDED.{k}" for k in _SUMS)
_CONFLICT_SQL = "(grain, tenant_id, period_start, feature, model, prompt_template, routing_tier)"
_FEATURE_GROUP = ("period_start", "feature", "model", "routing_tier", "tenant_tier")
_FEATURE_COLUMNS_SQL = ", ".join(("grain", *_FEATURE_GROUP, *_SUMS))
_FEATURE_ADD_SQL = ", ".join(f"{k} = billing_featurerollup.{k} + EXCLUDED.{k}" for k in _SUMS)
_FEATURE_CONFLICT_SQL = "(grain, period_start, feature, model, routing_tier, tenant_tier)"

_DELTA = "rollup_delta"
# The run's first-of-day keys: a plain table rather than a temporary one, which parallel
# workers could not read; unlogged, created and dropped in the run's transaction.
_FIRSTS = "rollup_firsts"

# The row (hour, tenant, feature, model, prompt template, routing tier, tenant tier) an
# event is folded into, as a 64-bit hash: computed on each event for the keys, on each
# group of the delta later, the same values giving the same hash.
_CELL_SQL = (
    "hash_record_extended(ROW(date_trunc('hour', e.timestamp), e.tenant_id, e.feature_id, "
    "e.model, e.prompt_template_id, e.routing_tier, e.tenant_tier), 0)"
)


# The sessions and prompt hashes of the new events, each (UTC day, key) once with the
# row its first event (the lowest id) is folded into, the key hashing the tenant, the
# kind and the text; then those already recorded are dropped, and the rest recorded. A
# key left here is the first of its session, or of its prompt, for its tenant that day;
# the delta counts it on that row, with no join back to the events. Each kind is grouped
# whole by one process (on a big run the two side by side, in parallel workers): split
# among workers, each would hash nearly every key, then the leader all of them again.
def _keys_sql(*, cells: bool) -> str:
    """The statement that makes the keys' table; `cells`: with the row of each key's first
    event (a fold), or the keys alone (a restore of the recorded keys)."""
    first = ", (min(ARRAY[id, cell]))[2] AS cell" if cells else ""  # the lowest id's row
    per_event = f", e.id, {_CELL_SQL} AS cell" if cells else ""
    return f"""
CREATE UNLOGGED TABLE {_FIRSTS} AS
SELECT day, key, true AS session{first} FROM (
    SELECT e.timestamp::date AS day, hashtextextended(e.session, e.tenant_id * 2) AS key
           {per_event}
      FROM ingestion_usageevent e
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s AND e.session <> ''
) s GROUP BY day, key
UNION ALL
SELECT day, key, false{first} FROM (
    SELECT e.timestamp::date AS day, hashtextextended(e.prompt_hash, e.tenant_id * 2 + 1) AS key
           {per_event}
      FROM ingestion_usageevent e
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s AND e.prompt_hash <> ''
) p GROUP BY day, key
"""


_FIRSTS_SQL = _keys_sql(cells=True)
_KEYS_RESTORE_SQL = _keys_sql(cells=False)
_FIRSTS_SEEN_SQL = f"""
DELETE FROM {_FIRSTS} f USING billing_dailykey d WHERE d.day = f.day AND d.key = f.key
"""
# The keys to record: only days that can still receive events (older ones are pruned
# anyway). Into the index in its order, so that each key lands next to the last.
_NEW_KEYS_SQL = f"SELECT day, key FROM {_FIRSTS} WHERE day >= %(keep_from)s"
_FIRSTS_RECORD_SQL = f"INSERT INTO billing_dailykey (day, key) {_NEW_KEYS_SQL} ORDER BY day, key"
# A bulk load writes the keys kept and the new ones into a new table, which then takes the
# old one's place: CREATE TABLE AS takes the bulk-insert path, which INSERT ... SELECT does
# not (7.8 million keys: 2.9 s against 6.4-6.9 s).
_KEYS_LOADED = "rollup_keys_loaded"
_KEYS_LOAD_SQL = f"""
CREATE UNLOGGED TABLE {_KEYS_LOADED} AS
SELECT day, key FROM billing_dailykey UNION ALL {_NEW_KEYS_SQL}
"""

# The memory the primary key's sort gets. Smaller than a run's `work_mem` on purpose: the
# sort of 7.8 million keys took 5.7-7.8 s with 64-128 MB, against 8.9-10.5 s with 1 GB,
# whose single in-memory sort misses the CPU caches far more than a merge of sorted runs.
KEYS_INDEX_MEM = "64MB"

# The hours touched since the watermark, grouped by ids (no joins per event), then named.
# CREATE TABLE AS may run in parallel, which an INSERT with a CTE may not.
_EVENT_TOKENS_SQL = ", ".join(f"sum(e.{k})::bigint AS {k}" for k in TOKEN_KINDS)
# The events' sums with the first-of-day keys counted in (see first_cells below).
_EVENT_HOURS_SUMS_SQL = ", ".join(
    {
        "sessions": "COALESCE(f.sessions, 0) AS sessions",
        "repeat_calls": "g.hashed_calls - COALESCE(f.first_prompts, 0) AS repeat_calls",
    }.get(k, f"g.{k}")
    for k in _SUMS
)
_DELTA_SQL = f"""
CREATE TEMP TABLE {_DELTA} ON COMMIT DROP AS
WITH events AS (
    SELECT e.*, ch.priced AS changed_priced, ch.cost AS changed_cost
      FROM ingestion_usageevent e
      -- The changes of these events only (by the changes' index on their event): summing
      -- every change ever written would make each run as slow as the history is long.
      LEFT JOIN (
          SELECT c.event_id, sum(c.priced_delta) AS priced, sum(c.cost_delta) AS cost
            FROM ingestion_costchange c
            JOIN ingestion_usageevent ce ON ce.id = c.event_id
           WHERE ce.xact >= %(low_events)s AND ce.xact < %(high)s
           GROUP BY c.event_id
      ) ch ON ch.event_id = e.id
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s
),
-- An event counts as it was inserted: its later cost changes (committed with the event's
-- update, so this snapshot sees both or neither) are taken off here and folded on their
-- own below. Sums of what is there rather than sums of per-event differences: most events
-- have no change, and adding nothing costs nothing.
event_groups AS (
    SELECT date_trunc('hour', e.timestamp) AS period_start, e.tenant_id, e.feature_id, e.model,
           e.prompt_template_id, e.routing_tier, e.tenant_tier, count(*) AS calls,
           (count(e.price_id) - COALESCE(sum(e.changed_priced), 0))::bigint AS priced_calls,
           {_EVENT_TOKENS_SQL},
           COALESCE(sum(e.cost), 0) - COALESCE(sum(e.changed_cost), 0) AS cost,
           COALESCE(sum(e.chunks_retrieved), 0)::bigint AS chunks_retrieved,
           COALESCE(sum(e.chunks_used), 0)::bigint AS chunks_used,
           count(e.reranker_changed_order) AS reranked_calls,
           count(*) FILTER (WHERE e.reranker_changed_order) AS reranker_changed,
           count(*) FILTER (WHERE e.outcome <> '') AS outcome_calls,
           count(*) FILTER (WHERE e.outcome = 'correct') AS correct_calls,
           COALESCE(sum(e.cost) FILTER (WHERE e.outcome <> ''), 0)
               - COALESCE(sum(e.changed_cost) FILTER (WHERE e.outcome <> ''), 0)
               AS outcome_cost,
           COALESCE(sum(e.cost) FILTER (WHERE e.session <> ''), 0)
               - COALESCE(sum(e.changed_cost) FILTER (WHERE e.session <> ''), 0)
               AS session_cost,
           count(*) FILTER (WHERE e.prompt_hash <> '') AS hashed_calls,
           {_CELL_SQL} AS cell
      FROM events e GROUP BY 1, 2, 3, 4, 5, 6, 7
),
-- The first-of-day keys counted on the rows of their first events: sessions, and the
-- prompt hashes' first calls (the others are repeats).
first_cells AS (
    SELECT cell, count(*) FILTER (WHERE session) AS sessions,
           count(*) FILTER (WHERE NOT session) AS first_prompts
      FROM {_FIRSTS} GROUP BY cell
),
event_hours AS (
    SELECT g.period_start, g.tenant_id, g.feature_id, g.model, g.prompt_template_id,
           g.routing_tier, g.tenant_tier, {_EVENT_HOURS_SUMS_SQL}
      FROM event_groups g LEFT JOIN first_cells f ON f.cell = g.cell
),
change_rows AS (
    SELECT e.timestamp AS ts, e.tenant_id, e.feature_id, e.model, e.prompt_template_id,
           e.routing_tier, e.tenant_tier, 0 AS calls, c.priced_delta AS priced_calls,
           {_ZEROS_SQL}, c.cost_delta AS cost, 0 AS chunks_retrieved, 0 AS chunks_used,
           0 AS reranked_calls, 0 AS reranker_changed, 0 AS outcome_calls, 0 AS correct_calls,
           CASE WHEN e.outcome <> '' THEN c.cost_delta ELSE 0 END AS outcome_cost,
           CASE WHEN e.session <> '' THEN c.cost_delta ELSE 0 END AS session_cost,
           0 AS sessions, 0 AS hashed_calls, 0 AS repeat_calls
      FROM ingestion_costchange c
      JOIN ingestion_usageevent e ON e.id = c.event_id
     WHERE c.xact >= %(low_changes)s AND c.xact < %(high)s
),
-- Each part grouped on its own (the events' part by parallel workers on a big run); the
-- upserts add them up, as they group the delta anyway.
parts AS (
    SELECT * FROM event_hours
    UNION ALL
    SELECT date_trunc('hour', ts), tenant_id, feature_id, model, prompt_template_id,
           routing_tier, tenant_tier, {_SUMS_SQL}
      FROM change_rows GROUP BY 1, 2, 3, 4, 5, 6, 7
)
SELECT h.period_start, h.tenant_id, COALESCE(f.key, '') AS feature, h.model,
       COALESCE(p.key, '') AS prompt_template, h.routing_tier, h.tenant_tier,
       {", ".join(f"h.{k}" for k in _SUMS)}
  FROM parts h
  LEFT JOIN ingestion_feature f ON f.id = h.feature_id
  LEFT JOIN ingestion_prompttemplate p ON p.id = h.prompt_template_id
"""

# The delta holds the events' part and the cost changes' part apart, and splits by the
# tenant's tier (which a tenant may change within an hour): each upsert groups it to its
# own key first, so no row is hit twice.
_HOUR_UPSERT_SQL = f"""
INSERT INTO billing_usagerollup ({_COLUMNS_SQL})
SELECT 'hour', period_start, tenant_id, feature, model, prompt_template, routing_tier,
       {_SUMS_SQL}
  FROM {_DELTA} GROUP BY 2, 3, 4, 5, 6, 7
ON CONFLICT {_CONFLICT_SQL} DO UPDATE SET {_ADD_SQL}
"""

_DAY_UPSERT_SQL = f"""
INSERT INTO billing_usagerollup ({_COLUMNS_SQL})
SELECT 'day', date_trunc('day', period_start), tenant_id, feature, model, prompt_template,
       routing_tier, {_SUMS_SQL}
  FROM {_DELTA} GROUP BY 2, 3, 4, 5, 6, 7
ON CONFLICT {_CONFLICT_SQL} DO UPDATE SET {_ADD_SQL}
"""

_FEATURE_UPSERT_SQL = f"""
INSERT INTO billing_featurerollup ({_FEATURE_COLUMNS_SQL})
SELECT %(grain)s, date_trunc(%(grain)s, period_start), feature, model, routing_tier,
       tenant_tier, {_SUMS_SQL}
  FROM {_DELTA} GROUP BY 2, 3, 4, 5, 6
ON CONFLICT {_FEATURE_CONFLICT_SQL} DO UPDATE SET {_FEATURE_ADD_SQL}
"""


# From this many keys a run may record them as a bulk load (see _record_keys).
_BULK_KEYS = 1_000_000


def _step(cursor: Any, step: str, sql: str, params: dict[str, Any] | None = None) -> int:
    """Run one statement of a fold, its time in the debug log; returns its row count."""
    started = time.perf_counter()
    cursor.execute(sql, params)
    logger.debug("rollup %s: %d rows, %.3f s", step, cursor.rowcount,
                 time.perf_counter() - started)  # fmt: skip
    return cursor.rowcount


def _record_keys(cursor: Any, keys: int) -> None:
    """Record the run's new keys. Millions of them, more than the table holds, are written
    as a bulk load: into a new table without an index, whose primary key is then built
    sorted, in a fraction of the time that inserting each key into the index would take.
    The new table takes the old one's name in the run's transaction, the old one locked
    exclusively first (only the rollups read it)."""
    keep_from = keys_kept_from()
    if keys >= _BULK_KEYS:
        cursor.execute("SELECT count(*) FROM (SELECT FROM billing_dailykey LIMIT %s) k", [keys])
        if cursor.fetchone()[0] < keys:
            cursor.execute("LOCK TABLE billing_dailykey IN ACCESS EXCLUSIVE MODE")
            _step(cursor, "keys recorded", _KEYS_LOAD_SQL, {"keep_from": keep_from})
            cursor.execute("DROP TABLE billing_dailykey")
            # Its primary key, added next, makes both columns NOT NULL again.
            cursor.execute(f"ALTER TABLE {_KEYS_LOADED} RENAME TO billing_dailykey")
            cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [KEYS_INDEX_MEM])
            _step(cursor, "keys indexed", "ALTER TABLE billing_dailykey ADD CONSTRAINT "
                  "billing_dailykey_pkey PRIMARY KEY (day, key)")  # fmt: skip
            return
    _step(cursor, "keys recorded", _FIRSTS_RECORD_SQL, {"keep_from": keep_from})


def _summarize_new_events(cursor: Any) -> None:
    """Summarize the page ranges of the events' BRIN index on `xact` that it has not yet:
    the runs find their new events through it, and reading an unsummarized range means
    reading every page of it. Autovacuum summarizes a range once the inserts have moved
    past it (`autosummarize`), but later, and not at all where it is off: without this,
    each run would read every event inserted since, a growing share of the table. The
    summary lock conflicts with a VACUUM of the table; rather than wait for one, the run
    goes on without (only slower)."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    lock_timeout = cursor.fetchone()[0]
    cursor.execute("SET LOCAL lock_timeout = '100ms'")
    try:
        with transaction.atomic():  # a savepoint: a lock timeout leaves the run as it was
            _step(cursor, "ranges summarized",
                  "SELECT brin_summarize_new_values('usage_event_xact_brin')")  # fmt: skip
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        logger.info("rollup: the events' index is locked; its new ranges stay unsummarized")
    finally:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])


def _restore_keys(cursor: Any, position: int) -> None:
    """Record again the keys of every event folded before `position` (of the days that
    can still receive events), as the runs that folded them did: `DailyKey` lost them."""
    logger.warning("rollup: the session and prompt keys were lost (a crash empties their "
                   "unlogged table); recording those of the folded events again")  # fmt: skip
    cursor.execute("TRUNCATE billing_dailykey")
    keys = _step(cursor, "keys restored", _KEYS_RESTORE_SQL, {"low_events": 0, "high": position})
    _record_keys(cursor, keys)
    cursor.execute(f"DROP TABLE {_FIRSTS}")


def _fold_postgresql(mark: RollupWatermark) -> RollupResult:
    params = {"low_events": mark.events_position, "low_changes": mark.changes_position}
    with connection.cursor() as cursor:
        # Every transaction below the snapshot's xmin has finished: its rows are all
        # visible now, and no later commit can add rows below it.
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        params["high"] = max(cursor.fetchone()[0], mark.events_position, mark.changes_position)
        # A first fold hashes millions of keys and groups: in memory, not in sorted runs
        # on disk. A small run uses a few megabytes whatever this says.
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.FINOPS_ROLLUP_WORK_MEM])
        # A run lost in a crash is folded again by the next (aggregates and watermark
        # commit together): its commit need not wait for the disk.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # Hours and days are UTC's (`timestamp::date`, `date_trunc`).
        cursor.execute("SET LOCAL TimeZone = 'UTC'")
        # Compiling a big fold's expressions takes each process about a second, more than
        # the compiled code saves here.
        cursor.execute("SET LOCAL jit = off")
        _summarize_new_events(cursor)
        if mark.events_position:
            cursor.execute("SELECT FROM billing_dailykey WHERE day = %s AND key = 0", [KEYS_WHOLE])
            if cursor.fetchone() is None:
                _restore_keys(cursor, mark.events_position)
        # Runs take turns on the watermark's lock: the table is this run's alone.
        keys = _step(cursor, "keys", _FIRSTS_SQL, params)
        # Fresh statistics: the planner joins a few keys by lookups, millions by hashing.
        _step(cursor, "keys analyzed", f"ANALYZE {_FIRSTS}")
        _step(cursor, "keys seen", _FIRSTS_SEEN_SQL)
        _record_keys(cursor, keys)
        _step(cursor, "delta", _DELTA_SQL, params)
        cursor.execute(f"SELECT COALESCE(sum(calls), 0) FROM {_DELTA}")
        events = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM ingestion_costchange WHERE xact >= %(low_changes)s "
            "AND xact < %(high)s",
            params,
        )
        changes = cursor.fetchone()[0]
        rows = _step(cursor, "hourly rows", _HOUR_UPSERT_SQL)
        rows += _step(cursor, "daily rows", _DAY_UPSERT_SQL)
        for grain, label in (("hour", "hourly"), ("day", "daily")):
            rows += _step(cursor, f"{label} feature rows", _FEATURE_UPSERT_SQL, {"grain": grain})
        _step(cursor, "delta dropped", f"DROP TABLE {_DELTA}")
        _step(cursor, "keys dropped", f"DROP TABLE {_FIRSTS}")
        cursor.execute(
            "INSERT INTO billing_dailykey (day, key) VALUES (%s, 0) ON CONFLICT DO NOTHING",
            [KEYS_WHOLE],
        )
    mark.events_position = mark.changes_position = params["high"]
    return RollupResult(events=int(events), changes=int(changes), rows=rows)


# --- Python, for databases without exact aggregation ----------------------------------


def _hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _chunks(queryset: Any, position: int) -> Iterator[list[tuple]]:
    while True:
        rows = list(queryset.filter(id__gt=position).order_by("id")[:_CHUNK])
        if not rows:
            return
        position = rows[-1][0]
        yield rows


def _key_hash(tenant_id: int, kind: str, text: str) -> int:
    digest = hashlib.blake2b(f"{tenant_id}:{kind}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, signed=True)


def _firsts(rows: list[tuple]) -> set[tuple[str, int]]:
    """(kind, event id) for each event that is the first of its session or prompt hash
    for its tenant that UTC day, the keys recorded as it goes."""
    first: dict[tuple[str, date, int], int] = {}
    for row in rows:
        event_id, ts, tenant_id, session, prompt_hash = row[0], row[1], row[2], row[-2], row[-1]
        day = ts.astimezone(UTC).date()
        for kind, text in (("s", session), ("p", prompt_hash)):
            if text:
                first.setdefault((kind, day, _key_hash(tenant_id, kind, text)), event_id)
    keys = list(first)
    for i in range(0, len(keys), 500):
        batch = keys[i : i + 500]
        seen = DailyKey.objects.filter(
            day__in={day for _, day, _ in batch}, key__in={key for _, _, key in batch}
        ).values_list("day", "key")
        seen_keys = set(seen)
        for key in batch:
            if key[1:] in seen_keys:
                del first[key]
    # Every key, old days too: a later chunk of this run looks them up (the run prunes
    # them at its end).
    DailyKey.objects.bulk_create(
        [DailyKey(day=day, key=key) for _, day, key in first], batch_size=500
    )
    return {(kind, event_id) for (kind, _, _), event_id in first.items()}


def _fold_python(mark: RollupWatermark) -> RollupResult:
    with localcontext(EXACT):
        return _fold_python_exact(mark)


def _fold_python_exact(mark: RollupWatermark) -> RollupResult:
    usage: dict[tuple, list] = {}
    features: dict[tuple, list] = {}
    result = RollupResult()

    def add(key: tuple, values: list) -> None:
        ts, tenant_id, feature, model, prompt, routing_tier, tenant_tier = key
        for grain, start in (("hour", _hour(ts)), ("day", _hour(ts).replace(hour=0))):
            for sums, full in (
                (usage, (grain, start, tenant_id, feature, model, prompt, routing_tier)),
                (features, (grain, start, feature, model, routing_tier, tenant_tier)),
            ):
                current = sums.get(full)
                if current is None:
                    sums[full] = list(values)
                else:
                    for i, v in enumerate(values):
                        current[i] += v

    events = UsageEvent.objects.values_list(
        "id", "timestamp", "tenant_id", "feature__key", "model", "prompt_template__key",
        "routing_tier", "tenant_tier", "price_id", *TOKEN_KINDS, "cost", "chunks_retrieved",
        "chunks_used", "reranker_changed_order", "outcome", "session", "prompt_hash",
    )  # fmt: skip
    for rows in _chunks(events, mark.events_position):
        firsts = _firsts(rows)
        # An event counts as it was inserted; its cost changes are folded on their own.
        changed = {
            event_id: (priced, cost)
            for event_id, priced, cost in CostChange.objects.filter(
                event_id__in=[row[0] for row in rows]
            )
            .values_list("event_id")
            .annotate(priced=Sum("priced_delta"), cost=ExactSum("cost_delta"))
        }
        for row in rows:
            (event_id, ts, tenant_id, feature, model, prompt, tier, tenant_tier, price_id,
             *rest) = row  # fmt: skip
            tokens, rest = rest[: len(TOKEN_KINDS)], rest[len(TOKEN_KINDS) :]
            cost, retrieved, used, reranker, outcome, session, prompt_hash = rest
            change_priced, change_cost = changed.get(event_id, (0, Decimal(0)))
            cost = (cost if cost is not None else Decimal(0)) - change_cost
            priced = (0 if price_id is None else 1) - change_priced
            metrics = [
                retrieved or 0, used or 0, int(reranker is not None), int(bool(reranker)),
                int(bool(outcome)), int(outcome == "correct"), cost if outcome else 0,
                cost if session else 0, int(("s", event_id) in firsts), int(bool(prompt_hash)),
                int(bool(prompt_hash) and ("p", event_id) not in firsts),
            ]  # fmt: skip
            add((ts, tenant_id, feature or "", model, prompt or "", tier, tenant_tier),
                [1, priced, *tokens, cost, *metrics])  # fmt: skip
        mark.events_position = rows[-1][0]
        result.events += len(rows)

    changes = CostChange.objects.values_list(
        "id", "event__timestamp", "event__tenant_id", "event__feature__key", "event__model",
        "event__prompt_template__key", "event__routing_tier", "event__tenant_tier",
        "priced_delta", "cost_delta", "event__outcome", "event__session",
    )  # fmt: skip
    zeros = [0] * len(TOKEN_KINDS)
    for rows in _chunks(changes, mark.changes_position):
        for row in rows:
            _, ts, tenant_id, feature, model, prompt, tier, tenant_tier, priced, cost = row[:10]
            outcome, session = row[10:]
            metrics = [0] * 6 + [cost if outcome else 0, cost if session else 0, 0, 0, 0]
            add((ts, tenant_id, feature or "", model, prompt or "", tier, tenant_tier),
                [0, priced, *zeros, cost, *metrics])  # fmt: skip
        mark.changes_position = rows[-1][0]
        result.changes += len(rows)

    result.rows = _upsert_python(UsageRollup, _USAGE_KEY, usage) + _upsert_python(
        FeatureRollup, _FEATURE_KEY, features
    )
    return result


_USAGE_KEY = ("grain", "period_start", "tenant_id", "feature", "model", "prompt_template",
              "routing_tier")  # fmt: skip
_FEATURE_KEY = ("grain", "period_start", "feature", "model", "routing_tier", "tenant_tier")


def _upsert_python(model: Any, key_fields: tuple[str, ...], sums: dict[tuple, list]) -> int:
    """Add `sums` (by `key_fields`) to the rows of `model`, creating the missing ones."""
    if not sums:
        return 0
    existing: dict[tuple, Any] = {}
    periods = {(k[0], k[1]) for k in sums}
    for grain in {g for g, _ in periods}:
        starts = [s for g, s in periods if g == grain]
        for i in range(0, len(starts), 500):
            for row in model.objects.filter(grain=grain, period_start__in=starts[i : i + 500]):
                existing[tuple(getattr(row, f) for f in key_fields)] = row
    to_update: list = []
    to_create: list = []
    for key, values in sums.items():
        row = existing.get(key)
        if row is None:
            row = model(**dict(zip(key_fields, key, strict=True)))
            for name, value in zip(_SUMS, values, strict=True):
                setattr(row, name, value)
            to_create.append(row)
        else:
            for name, value in zip(_SUMS, values, strict=True):
                setattr(row, name, getattr(row, name) + value)
            to_update.append(row)
    model.objects.bulk_create(to_create, batch_size=500)
    model.objects.bulk_update(to_update, list(_SUMS), batch_size=500)
    return len(to_create) + len(to_update)
