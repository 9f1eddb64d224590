"""The day keys' life cycle: recorded by each fold, bulk-loaded on a big one, recorded
again after a crash emptied them, pruned once no event can reach their day.

A key is a session or prompt hash a tenant used on a UTC day (`DailyKey`). On PostgreSQL
the table is unlogged: a crash (or a restore from a base backup, or a promoted replica)
leaves it empty. A row on `KEYS_WHOLE`, which no event has, says that the keys of every
folded event are there; a run that misses it records them again first.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing.models import DailyKey

from . import sql
from .sql import step

logger = logging.getLogger(__name__)

KEYS_WHOLE = date(9999, 12, 31)
# From this many new keys a run may record them as a bulk load (see `keys_record`).
BULK_KEYS = 1_000_000
# The memory the primary key's sort gets on a bulk load: smaller than a run's `work_mem`
# on purpose, as a merge of sorted runs misses the CPU caches less than one sort in memory.
KEYS_INDEX_MEM = "64MB"


def keys_kept_from() -> date:
    """No event older than the backfill window can arrive: the session and prompt keys of
    days before it (with two days to spare) are never looked up again."""
    return (timezone.now() - timedelta(days=settings.FINOPS_BACKFILL_DAYS + 2)).date()


def keys_reset() -> None:
    """Forget every key (a rebuild folds the whole ledger again)."""
    if connection.vendor == "postgresql":
        # Only the rollups read the keys: no reader waits on this lock.
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE billing_dailykey")
    else:
        DailyKey.objects.all().delete()


def keys_prune() -> None:
    """Drop the keys of days no event can reach any more."""
    kept_from = keys_kept_from()
    oldest = DailyKey.objects.order_by("day").values_list("day", flat=True).first()
    if oldest is not None and oldest < kept_from:
        DailyKey.objects.filter(day__lt=kept_from).delete()


def keys_whole(cursor: Any) -> bool:
    """Whether the keys of every folded event are recorded (PostgreSQL)."""
    cursor.execute("SELECT FROM billing_dailykey WHERE day = %s AND key = 0", [KEYS_WHOLE])
    return cursor.fetchone() is not None


def keys_mark_whole(cursor: Any) -> None:
    cursor.execute(
        "INSERT INTO billing_dailykey (day, key) VALUES (%s, 0) ON CONFLICT DO NOTHING",
        [KEYS_WHOLE],
    )


def keys_record(cursor: Any, keys: int) -> None:
    """Record the run's new keys (in `sql.FIRSTS`, `keys` of them). Millions of them, more
    than the table holds, are written as a bulk load: into a new table without an index,
    whose primary key is then built sorted, in a fraction of the time that inserting each
    key into the index would take. The new table takes the old one's name in the run's
    transaction, the old one locked exclusively first (only the rollups read it)."""
    params = {"keep_from": keys_kept_from()}
    if keys >= BULK_KEYS and _fewer_keys_than(cursor, keys):
        cursor.execute(sql.KEYS_LOCK_SQL)
        step(cursor, "keys recorded", sql.KEYS_LOAD_SQL, params)
        for statement in sql.KEYS_SWAP_SQL:
            cursor.execute(statement)
        cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [KEYS_INDEX_MEM])
        step(cursor, "keys indexed", sql.KEYS_INDEX_SQL)
    else:
        step(cursor, "keys recorded", sql.FIRSTS_RECORD_SQL, params)


def _fewer_keys_than(cursor: Any, keys: int) -> bool:
    cursor.execute("SELECT count(*) FROM (SELECT FROM billing_dailykey LIMIT %s) k", [keys])
    return cursor.fetchone()[0] < keys


def keys_restore(cursor: Any, position: int) -> None:
    """Record again the keys of every event folded before `position` (of the days that
    can still receive events), as the runs that folded them did: `DailyKey` lost them."""
    logger.warning("rollup: the session and prompt keys were lost (a crash empties their "
                   "unlogged table); recording those of the folded events again")  # fmt: skip
    cursor.execute("TRUNCATE billing_dailykey")
    keys = step(cursor, "keys restored", sql.KEYS_RESTORE_SQL, {"low_events": 0, "high": position})
    keys_record(cursor, keys)
    cursor.execute(f"DROP TABLE {sql.FIRSTS}")
