"""Folding the ledger into hourly and daily aggregates, incrementally and exactly once.

Each run reads only what committed since the last one and moves the watermark in the
same transaction as the aggregates, under a row lock: a re-run, a concurrent run or a
worker killed midway can neither count twice nor lose anything. Late events land in their
own hour; a late price reaches the aggregates as a `CostChange`.

PostgreSQL folds in one SQL statement. Elsewhere (the embedded SQLite, whose SUM is
floating point) the fold runs in Python with `Decimal`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from finops.fields import ExactSum
from finops.money import EXACT
from ingestion.models import CostChange, UsageEvent

from .models import TOKEN_KINDS, RollupWatermark, UsageRollup

WATERMARK = "usage"
_CHUNK = 20_000

_SUMS = ("calls", "priced_calls", *TOKEN_KINDS, "cost")
_GROUP = ("period_start", "tenant_id", "feature", "model", "prompt_template")


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


def _fold(*, rebuild: bool) -> RollupResult:
    started = time.perf_counter()
    RollupWatermark.objects.get_or_create(name=WATERMARK)
    with transaction.atomic():
        # The row lock makes concurrent runs take turns; each reads the position the
        # previous one committed.
        mark = RollupWatermark.objects.select_for_update().get(name=WATERMARK)
        if rebuild:
            UsageRollup.objects.all().delete()
            mark.events_position = mark.changes_position = 0
        if connection.vendor == "postgresql":
            result = _fold_postgresql(mark)
        else:
            result = _fold_python(mark)
        mark.updated_at = timezone.now()
        mark.save()
    result.seconds = time.perf_counter() - started
    return result


# --- PostgreSQL ----------------------------------------------------------------------

_TOKENS_SQL = ", ".join(f"e.{k}" for k in TOKEN_KINDS)
_ZEROS_SQL = ", ".join("0" for _ in TOKEN_KINDS)
_SUMS_SQL = ", ".join(f"sum({k}) AS {k}" for k in _SUMS)
_COLUMNS_SQL = ", ".join(("grain", *_GROUP, *_SUMS))
_ADD_SQL = ", ".join(f"{k} = billing_usagerollup.{k} + EXCLUDED.{k}" for k in _SUMS)
_CONFLICT_SQL = "(grain, tenant_id, period_start, feature, model, prompt_template)"

_DELTA = "rollup_delta"

# The hours touched since the watermark, grouped by ids (no joins per event), then named.
# CREATE TABLE AS may run in parallel, which an INSERT with a CTE may not.
_DELTA_SQL = f"""
CREATE TEMP TABLE {_DELTA} ON COMMIT DROP AS
WITH src AS (
    -- An event counts as it was inserted: its later cost changes (committed with the
    -- event's update, so this snapshot sees both or neither) are folded on their own.
    SELECT e.timestamp AS ts, e.tenant_id, e.feature_id, e.model, e.prompt_template_id,
           1 AS calls,
           CASE WHEN e.price_id IS NULL THEN 0 ELSE 1 END - COALESCE(ch.priced, 0)
               AS priced_calls,
           {_TOKENS_SQL}, COALESCE(e.cost, 0) - COALESCE(ch.cost, 0) AS cost
      FROM ingestion_usageevent e
      LEFT JOIN (
          SELECT event_id, sum(priced_delta) AS priced, sum(cost_delta) AS cost
            FROM ingestion_costchange GROUP BY event_id
      ) ch ON ch.event_id = e.id
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s
    UNION ALL
    SELECT e.timestamp, e.tenant_id, e.feature_id, e.model, e.prompt_template_id, 0,
           c.priced_delta, {_ZEROS_SQL}, c.cost_delta
      FROM ingestion_costchange c
      JOIN ingestion_usageevent e ON e.id = c.event_id
     WHERE c.xact >= %(low_changes)s AND c.xact < %(high)s
),
hourly AS (
    SELECT date_trunc('hour', ts) AS period_start, tenant_id, feature_id, model,
           prompt_template_id, {_SUMS_SQL}
      FROM src GROUP BY 1, 2, 3, 4, 5
)
SELECT h.period_start, h.tenant_id, COALESCE(f.key, '') AS feature, h.model,
       COALESCE(p.key, '') AS prompt_template, {", ".join(f"h.{k}" for k in _SUMS)}
  FROM hourly h
  LEFT JOIN ingestion_feature f ON f.id = h.feature_id
  LEFT JOIN ingestion_prompttemplate p ON p.id = h.prompt_template_id
"""

_HOUR_UPSERT_SQL = f"""
INSERT INTO billing_usagerollup ({_COLUMNS_SQL})
SELECT 'hour', * FROM {_DELTA}
ON CONFLICT {_CONFLICT_SQL} DO UPDATE SET {_ADD_SQL}
"""

_DAY_UPSERT_SQL = f"""
INSERT INTO billing_usagerollup ({_COLUMNS_SQL})
SELECT 'day', date_trunc('day', period_start), tenant_id, feature, model, prompt_template,
       {_SUMS_SQL}
  FROM {_DELTA} GROUP BY 2, 3, 4, 5, 6
ON CONFLICT {_CONFLICT_SQL} DO UPDATE SET {_ADD_SQL}
"""


def _fold_postgresql(mark: RollupWatermark) -> RollupResult:
    params = {"low_events": mark.events_position, "low_changes": mark.changes_position}
    with connection.cursor() as cursor:
        # Every transaction below the snapshot's xmin has finished: its rows are all
        # visible now, and no later commit can add rows below it.
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        params["high"] = max(cursor.fetchone()[0], mark.events_position, mark.changes_position)
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(_DELTA_SQL, params)
        cursor.execute(f"SELECT COALESCE(sum(calls), 0) FROM {_DELTA}")
        events = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM ingestion_costchange WHERE xact >= %(low_changes)s "
            "AND xact < %(high)s",
            params,
        )
        changes = cursor.fetchone()[0]
        cursor.execute(_HOUR_UPSERT_SQL)
        rows = cursor.rowcount
        cursor.execute(_DAY_UPSERT_SQL)
        rows += cursor.rowcount
        cursor.execute(f"DROP TABLE {_DELTA}")
    mark.events_position = mark.changes_position = params["high"]
    return RollupResult(events=int(events), changes=int(changes), rows=rows)


# --- Python, for databases without exact aggregation ----------------------------------

Key = tuple[str, datetime, int, str, str, str]


def _hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _chunks(queryset: Any, position: int) -> Iterator[list[tuple]]:
    while True:
        rows = list(queryset.filter(id__gt=position).order_by("id")[:_CHUNK])
        if not rows:
            return
        position = rows[-1][0]
        yield rows


def _fold_python(mark: RollupWatermark) -> RollupResult:
    with localcontext(EXACT):
        return _fold_python_exact(mark)


def _fold_python_exact(mark: RollupWatermark) -> RollupResult:
    sums: dict[Key, list] = {}
    result = RollupResult()

    def add(key: tuple, values: list) -> None:
        for grain, start in (("hour", _hour(key[0])), ("day", _hour(key[0]).replace(hour=0))):
            full = (grain, start, *key[1:])
            current = sums.get(full)
            if current is None:
                sums[full] = list(values)
            else:
                for i, v in enumerate(values):
                    current[i] += v

    events = UsageEvent.objects.values_list(
        "id", "timestamp", "tenant_id", "feature__key", "model", "prompt_template__key",
        "price_id", *TOKEN_KINDS, "cost",
    )  # fmt: skip
    for rows in _chunks(events, mark.events_position):
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
            tokens = list(row[7:14])
            change_priced, change_cost = changed.get(row[0], (0, Decimal(0)))
            cost = (row[14] if row[14] is not None else Decimal(0)) - change_cost
            priced = (0 if row[6] is None else 1) - change_priced
            add((row[1], row[2], row[3] or "", row[4], row[5] or ""), [1, priced, *tokens, cost])
        mark.events_position = rows[-1][0]
        result.events += len(rows)

    changes = CostChange.objects.values_list(
        "id", "event__timestamp", "event__tenant_id", "event__feature__key", "event__model",
        "event__prompt_template__key", "priced_delta", "cost_delta",
    )  # fmt: skip
    zeros = [0] * len(TOKEN_KINDS)
    for rows in _chunks(changes, mark.changes_position):
        for row in rows:
            add((row[1], row[2], row[3] or "", row[4], row[5] or ""), [0, row[6], *zeros, row[7]])
        mark.changes_position = rows[-1][0]
        result.changes += len(rows)

    result.rows = _upsert_python(sums)
    return result


def _upsert_python(sums: dict[Key, list]) -> int:
    if not sums:
        return 0
    existing: dict[Key, UsageRollup] = {}
    periods = {(k[0], k[1]) for k in sums}
    for grain in {g for g, _ in periods}:
        starts = [s for g, s in periods if g == grain]
        for i in range(0, len(starts), 500):
            for row in UsageRollup.objects.filter(
                grain=grain, period_start__in=starts[i : i + 500]
            ):
                key = (row.grain, row.period_start, row.tenant_id, row.feature, row.model,
                       row.prompt_template)  # fmt: skip
                existing[key] = row
    to_update: list[UsageRollup] = []
    to_create: list[UsageRollup] = []
    for key, values in sums.items():
        row = existing.get(key)
        if row is None:
            grain, start, tenant_id, feature, model, prompt = key
            row = UsageRollup(grain=grain, period_start=start, tenant_id=tenant_id,
                              feature=feature, model=model, prompt_template=prompt)  # fmt: skip
            for name, value in zip(_SUMS, values, strict=True):
                setattr(row, name, value)
            to_create.append(row)
        else:
            for name, value in zip(_SUMS, values, strict=True):
                setattr(row, name, getattr(row, name) + value)
            to_update.append(row)
    UsageRollup.objects.bulk_create(to_create, batch_size=500)
    UsageRollup.objects.bulk_update(to_update, list(_SUMS), batch_size=500)
    return len(to_create) + len(to_update)
