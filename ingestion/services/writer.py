"""The one write path of usage events: a multi-row insert that skips existing ids.

On PostgreSQL the rows are COPied (psycopg's C row writer) into a session-local staging
table without constraints, then moved by one `INSERT ... SELECT ... ON CONFLICT DO
NOTHING`, in the request's transaction. Binding the rows as parameters instead costs
~15 ms more per 1000 rows, most of it psycopg's Python array dumper. Other databases (the
embedded SQLite), and small batches on PostgreSQL, get multi-row `VALUES`. Both return
the `(tenant_id, event_id)` pairs actually inserted, so concurrent retries of the same
event can tell which request stored it, and the inserting transaction's id, which the
guard's counters need (so no extra round trip asks for it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from django.db import connection
from django.db.models import Field

from ..models import UsageEvent

_SQLITE_ROWS_PER_STATEMENT = 200
# Up to this many rows, one INSERT ... VALUES beats staging by three round trips.
_PG_DIRECT_ROWS = 32


@cache
def event_columns() -> tuple[Field, ...]:
    # Columns the database fills itself (the id, the transaction id) are left out.
    return tuple(
        f for f in UsageEvent._meta.concrete_fields if not f.primary_key and not f.has_db_default()
    )


_STAGE = "usage_event_stage"


def _pg_insert(columns: Mapping[str, Sequence[Any]], count: int) -> list[tuple[int, str, int]]:
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    fields = event_columns()
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [columns[f.attname] for f in fields]
    json_columns = [i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"]
    for i in json_columns:
        values[i] = [msgspec.json.encode(v).decode() for v in values[i]]
    with connection.cursor() as cursor:
        # A session-local staging table: the event columns, no constraints, no indexes.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} AS SELECT {names} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {_STAGE} ({names}) FROM STDIN") as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)
        cursor.execute(
            # One global order of keys: two batches sharing ids then wait for each
            # other instead of deadlocking.
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {_STAGE} "
            # COLLATE "C": the code-point order Python sorts small batches in.
            'ORDER BY tenant_id, event_id COLLATE "C" '
            "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id, xact"
        )
        inserted = [(row[0], row[1], row[2]) for row in cursor.fetchall()]
        # Emptied in the same transaction, so no row can outlive this request. (ON COMMIT
        # DELETE ROWS was measured leaving rows behind across commits here; the TRUNCATE
        # leaves a few dead catalog rows per call, which autovacuum clears.)
        cursor.execute(f"TRUNCATE {_STAGE}")
        return inserted


def _generic_insert(columns: Mapping[str, Sequence[Any]], count: int) -> list[tuple[int, str, int]]:
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    fields = event_columns()
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
    inserted: list[tuple[int, str, int]] = []
    # The same global key order as the staging path: concurrent batches cannot deadlock.
    tenants, ids = columns["tenant_id"], columns["event_id"]
    order = sorted(range(count), key=lambda i: (tenants[i], ids[i]))
    with connection.cursor() as cursor:
        for start in range(0, count, _SQLITE_ROWS_PER_STATEMENT):
            stop = min(start + _SQLITE_ROWS_PER_STATEMENT, count)
            params: list[Any] = []
            for i in order[start:stop]:
                for f in fields:
                    params.append(f.get_db_prep_save(columns[f.attname][i], connection))
            values = ", ".join([placeholder] * (stop - start))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {values} "
                "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id, xact",
                params,
            )
            inserted.extend((row[0], row[1], row[2]) for row in cursor.fetchall())
    return inserted


@dataclass(frozen=True, slots=True)
class Inserted:
    """The `(tenant_id, event_id)` pairs a call inserted, and the id of the inserting
    transaction (on PostgreSQL; 0 elsewhere; None when nothing was inserted)."""

    pairs: set[tuple[int, str]]
    xact: int | None


def events_insert(*, columns: Mapping[str, Sequence[Any]], count: int) -> Inserted:
    """Insert `count` rows given column-wise (attname -> values); existing
    `(tenant, event_id)` pairs are left as they are."""
    if count == 0:
        return Inserted(set(), None)
    if connection.vendor == "postgresql" and count > _PG_DIRECT_ROWS:
        rows = _pg_insert(columns, count)
    else:
        rows = _generic_insert(columns, count)
    return Inserted({(r[0], r[1]) for r in rows}, rows[0][2] if rows else None)
