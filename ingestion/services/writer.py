"""The one write path of usage events: a multi-row insert that skips existing ids.

PostgreSQL gets the rows as one array per column (`INSERT ... SELECT FROM unnest(...)`),
a single statement with a fixed number of parameters whatever the batch size. Other
databases (the embedded SQLite) get chunked multi-row `VALUES`. Both return the
`(tenant_id, event_id)` pairs actually inserted, so concurrent retries of the same event
can tell which request stored it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import msgspec
from django.db import connection
from django.db.models import Field

from ..models import UsageEvent

_SQLITE_ROWS_PER_STATEMENT = 200


@cache
def event_columns() -> tuple[Field, ...]:
    return tuple(f for f in UsageEvent._meta.concrete_fields if not f.primary_key)


def _pg_array_type(field: Field) -> str:
    if field.get_internal_type() == "JSONField":
        return "text[]::jsonb[]"
    return f"{field.db_type(connection)}[]"


def _pg_insert(columns: Mapping[str, Sequence[Any]]) -> list[tuple[int, str]]:
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    fields = event_columns()
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    arrays = ", ".join(f"%s::{_pg_array_type(f)}" for f in fields)
    params = []
    for f in fields:
        values = columns[f.attname]
        if f.get_internal_type() == "JSONField":
            values = [msgspec.json.encode(v).decode() for v in values]
        params.append(list(values))
    sql = (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row[0], row[1]) for row in cursor.fetchall()]


def _generic_insert(columns: Mapping[str, Sequence[Any]], count: int) -> list[tuple[int, str]]:
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    fields = event_columns()
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
    inserted: list[tuple[int, str]] = []
    with connection.cursor() as cursor:
        for start in range(0, count, _SQLITE_ROWS_PER_STATEMENT):
            stop = min(start + _SQLITE_ROWS_PER_STATEMENT, count)
            params: list[Any] = []
            for i in range(start, stop):
                for f in fields:
                    params.append(f.get_db_prep_save(columns[f.attname][i], connection))
            values = ", ".join([placeholder] * (stop - start))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {values} "
                "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id",
                params,
            )
            inserted.extend((row[0], row[1]) for row in cursor.fetchall())
    return inserted


def events_insert(*, columns: Mapping[str, Sequence[Any]], count: int) -> set[tuple[int, str]]:
    """Insert `count` rows given column-wise (attname -> values); existing
    `(tenant, event_id)` pairs are left as they are. Returns the pairs inserted."""
    if count == 0:
        return set()
    if connection.vendor == "postgresql":
        return set(_pg_insert(columns))
    return set(_generic_insert(columns, count))
