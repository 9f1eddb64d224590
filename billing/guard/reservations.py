"""Reservations recorded where they survive a Redis loss: PostgreSQL.

Each call the guard lets through reserves its expected cost on the counters it was
checked against. Redis holds the reservations the checks count; a row per counter in
`GuardReservation` holds the same, written before the check (so no seed can miss a
reservation Redis is about to take) and deleted in the transaction that stores the
call's event (so a seed's snapshot sees either the event's cost or its reservation,
never both or neither). A seed installs the live rows of its counter with its value
(`ledger`, `seeding`): after Redis loses its state, the calls in flight still count.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from ..models import GuardReservation

# A reservation's member in a counter's sorted set: "<id>:<nanos>".
Release = tuple[str, str]  # (counter name, member)


def reservation_record(reservation: str, counters: list[str], nanos: int, expires_ms: int) -> None:
    GuardReservation.objects.bulk_create(
        [
            GuardReservation(
                reservation=reservation, counter=name, nanos=nanos, expires_ms=expires_ms
            )
            for name in counters
        ]  # fmt: skip
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
    with connection.cursor() as cursor:
        table = GuardReservation._meta.db_table
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(
            f"DELETE FROM {table} WHERE reservation IN ({marks}) "  # noqa: S608 - no user text
            "RETURNING counter, reservation, nanos",
            ids,
        )
        return [(counter, f"{rid}:{nanos}") for counter, rid, nanos in cursor.fetchall()]


def reservations_prune(*, now_ms: int) -> int:
    """Delete the rows past their expiry (they no longer count anywhere)."""
    deleted, _ = GuardReservation.objects.filter(expires_ms__lte=now_ms).delete()
    return deleted
