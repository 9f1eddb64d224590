"""Upkeep of the events' BRIN index on `xact`, through which a run finds its new events."""

from __future__ import annotations

import logging
from typing import Any

from django.db import OperationalError, transaction

from .sql import step

logger = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"


def brin_summarize_new_events(cursor: Any) -> None:
    """Summarize the page ranges of the events' BRIN index on `xact` that it has not yet:
    reading an unsummarized range means reading every page of it. Autovacuum summarizes a
    range once the inserts have moved past it (`autosummarize`), but later, and not at all
    where it is off: without this, each run would read every event inserted since, a
    growing share of the table. The summary lock conflicts with a VACUUM of the table;
    rather than wait for one, the run goes on without (only slower)."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    lock_timeout = cursor.fetchone()[0]
    cursor.execute("SET LOCAL lock_timeout = '100ms'")
    try:
        with transaction.atomic():  # a savepoint: a lock timeout leaves the run as it was
            step(cursor, "ranges summarized",
                 "SELECT brin_summarize_new_values('usage_event_xact_brin')")  # fmt: skip
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        logger.info("rollup: the events' index is locked; its new ranges stay unsummarized")
    finally:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
