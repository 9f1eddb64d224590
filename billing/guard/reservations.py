"""Reservations recorded where they survive a Redis loss: PostgreSQL.

Each call the guard lets through reserves its expected cost on the spend counters it was
checked against. Redis holds the reservations the checks count; a `GuardReservation` row
holds the same (one per call, naming its counters), written before the check (so no
seed can miss a reservation Redis is about to take) and deleted in the transaction that
stores the call's event (so a seed's snapshot sees either the event's cost or its
reservation, never both or neither). A seed installs the live rows of its counter with
its value (`ledger`, `seeding`): after Redis loses its state, the calls in flight still
count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db import connection

from ..models import GuardReservation

# A reservation's member in a counter's sorted set: "<id>:<nanos>".
Release = tuple[str, str]  # (counter name, member)

_TABLE = GuardReservation._meta.db_table


def reservation_record(reservation: str, counters: list[str], nanos: int, expires_ms: int) -> None:
    """One statement, on the guard's path: no ORM instance is built."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (reservation, counters, nanos, expires_ms) "  # noqa: S608
            "VALUES (%s, %s, %s, %s)",
            [reservation, json.dumps(counters), nanos, expires_ms],
        )


def reservation_forget(reservation: str) -> None:
    """The check reserved nothing (a blocking limit was hit)."""
    GuardReservation.objects.filter(reservation=reservation).delete()


def reservations_settle(reservations: Iterable[str]) -> list[Release]:
    """Inside the transaction that stores the events carrying `reservations`: delete
    their rows, and say which members to release from Redis after the commit. An id
    settles once: a second event carrying it finds no row."""
    ids = sorted({r for r in reservations if r})
    if not ids:
        return []
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {_TABLE} WHERE reservation IN ({marks}) "  # noqa: S608 - no user text
            "RETURNING reservation, counters, nanos",
            ids,
        )
        rows = cursor.fetchall()
    releases = []
    for reservation, counters, nanos in rows:
        names = json.loads(counters) if isinstance(counters, str) else counters
        releases += [(name, f"{reservation}:{nanos}") for name in names]
    return releases


def reservations_prune(*, now_ms: int) -> int:
    """Delete the rows past their expiry (they no longer count anywhere)."""
    deleted, _ = GuardReservation.objects.filter(expires_ms__lte=now_ms).delete()
    return deleted
