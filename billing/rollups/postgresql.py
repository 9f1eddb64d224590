"""The fold on PostgreSQL: a few statements (`sql`), everything summed in the database."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from billing.models import RollupWatermark

from . import sql
from .brin import brin_summarize_new_events
from .keys import keys_mark_whole, keys_record, keys_restore, keys_whole
from .result import RollupResult
from .sql import step
from .tags import tag_key


def fold_postgresql(mark: RollupWatermark) -> RollupResult:
    """Fold what committed between the watermark and the snapshot's xmin; move `mark`.
    Runs in the caller's transaction, which holds the watermark's row lock."""
    params = {"low_events": mark.events_position, "low_changes": mark.changes_position,
              "tag_key": tag_key()}  # fmt: skip
    with connection.cursor() as cursor:
        params["high"] = _high(cursor, mark)
        _settings(cursor)
        brin_summarize_new_events(cursor)
        if mark.events_position and not keys_whole(cursor):
            keys_restore(cursor, mark.events_position)
        keys = step(cursor, "keys", sql.FIRSTS_SQL, params)
        # Fresh statistics: the planner joins a few keys by lookups, millions by hashing.
        step(cursor, "keys analyzed", f"ANALYZE {sql.FIRSTS}")
        step(cursor, "keys seen", sql.FIRSTS_SEEN_SQL)
        keys_record(cursor, keys)
        step(cursor, "delta", sql.DELTA_SQL, params)
        result = _counts(cursor, params)
        result.rows = _upsert(cursor)
        step(cursor, "delta dropped", f"DROP TABLE {sql.DELTA}")
        step(cursor, "keys dropped", f"DROP TABLE {sql.FIRSTS}")
        keys_mark_whole(cursor)
    mark.events_position = mark.changes_position = params["high"]
    return result


def _high(cursor: Any, mark: RollupWatermark) -> int:
    """Where this run stops: every transaction below the snapshot's xmin has finished, its
    rows all visible now, and no later commit can add rows below it."""
    cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return max(cursor.fetchone()[0], mark.events_position, mark.changes_position)


def _settings(cursor: Any) -> None:
    # A first fold hashes millions of keys and groups: in memory, not in sorted runs on
    # disk. A small run uses a few megabytes whatever this says.
    cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.FINOPS_ROLLUP_WORK_MEM])
    # A run lost in a crash is folded again by the next (aggregates and watermark commit
    # together): its commit need not wait for the disk.
    cursor.execute("SET LOCAL synchronous_commit = off")
    # Hours and days are UTC's (`timestamp::date`, `date_trunc`).
    cursor.execute("SET LOCAL TimeZone = 'UTC'")
    # Compiling a big fold's expressions takes each process longer than the compiled code
    # saves here.
    cursor.execute("SET LOCAL jit = off")


def _counts(cursor: Any, params: dict[str, Any]) -> RollupResult:
    cursor.execute(sql.EVENTS_FOLDED_SQL)
    events = cursor.fetchone()[0]
    cursor.execute(sql.CHANGES_FOLDED_SQL, params)
    changes = cursor.fetchone()[0]
    return RollupResult(events=int(events), changes=int(changes))


def _upsert(cursor: Any) -> int:
    rows = step(cursor, "hourly rows", sql.HOUR_UPSERT_SQL)
    rows += step(cursor, "daily rows", sql.DAY_UPSERT_SQL)
    for grain, label in (("hour", "hourly"), ("day", "daily")):
        rows += step(cursor, f"{label} feature rows", sql.FEATURE_UPSERT_SQL, {"grain": grain})
    return rows
