"""Answers under database faults: a lost or refused database connection is a 503 with
`Retry-After` and a JSON `detail` on every write endpoint, never a bare 500, and a retry
of the same events stores each once.

The faults are real. On PostgreSQL the backend behind Django's connection is terminated
(`pg_terminate_backend`) before a request, during its INSERT and at its COMMIT (a trigger
terminates its own backend), and a connection is refused by a port nothing listens on.
On SQLite another connection holds the write lock ("database ... is locked").
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from finops.faults import RETRY_AFTER_SECONDS
from finops.models import Tenant
from ingestion.models import UsageEvent
from tests.conftest import event, post_events

# Flushing between tests would drop the prices the migrations load: restore them.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="terminates PostgreSQL backends and refuses its port; SQLite has neither "
    "(its fault, the locked database, is tested below)",
)
on_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="locks the SQLite database from a second connection"
)

MODEL = "gpt-4o-2024-08-06"
EVENTS_TABLE = UsageEvent._meta.db_table
# One end time for the run: a retry is the same content, not a conflicting one.
CALL_END = time.time() - 60


# --- The write endpoints --------------------------------------------------------------


def _otlp_body(span_ids: list[str]) -> dict[str, Any]:
    end = int(CALL_END * 1e9)
    spans = [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat",
        "kind": 3, "startTimeUnixNano": str(end - 1_000_000_000), "endTimeUnixNano": str(end),
        "attributes": [
            {"key": "gen_ai.response.model", "value": {"stringValue": MODEL}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "300"}},
        ],
    } for span_id in span_ids]  # fmt: skip
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "finops.tenant", "value": {"stringValue": "acme"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
    }]}  # fmt: skip


def _litellm_body(ids: list[str]) -> list[dict[str, Any]]:
    return [{
        "id": call_id, "status": "success", "model": "gpt-4o", "custom_llm_provider": "openai",
        "prompt_tokens": 1200, "completion_tokens": 300, "startTime": CALL_END - 1.25,
        "endTime": CALL_END, "request_tags": ["tenant:acme"],
        "response": {"model": MODEL, "usage": {"prompt_tokens": 1200, "completion_tokens": 300}},
    } for call_id in ids]  # fmt: skip


def _post_json(client: APIClient, path: str, body: Any):
    return client.post(path, json.dumps(body), content_type="application/json")


# Three events each: what a retry must store once.
INTAKES: dict[str, Callable[[APIClient], Any]] = {
    "events": lambda c: post_events(c, {"events": [event(event_id=f"e-{n}") for n in range(3)]}),
    "otlp": lambda c: _post_json(
        c, "/v1/traces", _otlp_body(["eee19b7ec3c1b171", "eee19b7ec3c1b172", "eee19b7ec3c1b173"])
    ),
    "litellm": lambda c: _post_json(
        c, "/api/v1/integrations/litellm", _litellm_body(["call-1", "call-2", "call-3"])
    ),
}
# Each write endpoint, and its status once the database is back.
WRITES: dict[str, tuple[Callable[[APIClient], Any], int]] = {
    "events": (INTAKES["events"], 202),
    "otlp": (INTAKES["otlp"], 200),
    "litellm": (INTAKES["litellm"], 202),
    "guard": (lambda c: _post_json(c, "/api/v1/guard", {"tenant": "acme", "model": MODEL}), 200),
    "budget": (
        lambda c: _post_json(
            c, "/api/v1/budgets", {"tenant": "acme", "period": "month", "amount": "500.00"}
        ),
        201,
    ),
    "management": (lambda c: _post_json(c, "/api/v1/tenants", {"slug": "initech"}), 201),
}
# ingestion/apis.py's OtlpTracesApi answers its own 503 (text/plain, no JSON) to a fault
# inside spans_ingest; the shared answer (finops/faults.py) takes over once that
# try/except is removed, and this mark must go with it.


@pytest.fixture
def writer(acme: Tenant, make_client: Callable[..., APIClient]) -> APIClient:
    """An operator key that may write everywhere: events, the guard, budgets, tenants."""
    return make_client(None, ["ingest", "read", "manage"])


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The database is unavailable; try again later."}


def stored_once(post: Callable[[APIClient], Any], writer: APIClient) -> None:
    """A retry stores the three events; one more retry finds them all duplicates."""
    assert post(writer).status_code in (200, 202)
    assert UsageEvent.objects.count() == 3
    again = post(writer)
    assert again.status_code in (200, 202)
    assert UsageEvent.objects.count() == 3
    if again["Content-Type"] == "application/json" and "duplicates" in again.json():
        assert again.json()["duplicates"] == 3


# --- PostgreSQL: a terminated backend, a refused connection ---------------------------


@pytest.fixture
def admin() -> Iterator[psycopg.Connection]:
    """A second connection to the test database, beside Django's: the operator's psql."""
    settings = connection.settings_dict
    params = {"dbname": settings["NAME"], "user": settings["USER"],
              "password": settings["PASSWORD"], "host": settings["HOST"],
              "port": settings["PORT"]}  # fmt: skip
    with psycopg.connect(autocommit=True, **{k: v for k, v in params.items() if v}) as conn:
        yield conn


def backend_terminate(admin: psycopg.Connection) -> None:
    """Terminate the backend behind Django's open connection, as a failover or an operator
    would, and wait until it is gone."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)


@contextmanager
def backend_dies_on_insert(admin: psycopg.Connection, *, at_commit: bool) -> Iterator[None]:
    """A trigger on the events table by which the inserting backend terminates itself:
    during the INSERT, or (a deferred constraint trigger) during its COMMIT."""
    admin.execute(
        "CREATE FUNCTION fault_backend_die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        # pg_sleep: the termination is taken at its first interrupt check, never later.
        "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; "
        "END $$"
    )
    if at_commit:
        admin.execute(
            f"CREATE CONSTRAINT TRIGGER fault_die AFTER INSERT ON {EVENTS_TABLE} DEFERRABLE "
            "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_backend_die()"
        )
    else:
        admin.execute(
            f"CREATE TRIGGER fault_die AFTER INSERT ON {EVENTS_TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION fault_backend_die()"
        )
    try:
        yield
    finally:
        admin.execute(f"DROP TRIGGER IF EXISTS fault_die ON {EVENTS_TABLE}")
        admin.execute("DROP FUNCTION IF EXISTS fault_backend_die()")


@contextmanager
def database_refused() -> Iterator[None]:
    """Django's connection pointed at a local port nothing listens on: PostgreSQL down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


@on_postgresql
@pytest.mark.parametrize("write", WRITES, ids=str)
def test_a_terminated_backend_answers_503_then_the_next_request_reconnects(
    writer, admin, write, caplog
) -> None:
    post, ok = WRITES[write]
    backend_terminate(admin)
    with caplog.at_level(logging.WARNING, logger="finops.faults"):
        assert_unavailable(post(writer))
    assert "AdminShutdown" in caplog.text or "OperationalError" in caplog.text

    assert post(writer).status_code == ok


@on_postgresql
@pytest.mark.parametrize("write", WRITES, ids=str)
def test_a_refused_connection_answers_503_then_the_next_request_reconnects(writer, write) -> None:
    post, ok = WRITES[write]
    with database_refused():
        assert_unavailable(post(writer))

    assert post(writer).status_code == ok


@on_postgresql
@pytest.mark.parametrize("at_commit", [False, True], ids=["during-insert", "at-commit"])
@pytest.mark.parametrize("intake", ["events", "otlp", "litellm"], ids=str)
def test_events_lost_with_their_backend_are_stored_once_by_the_retry(
    writer, admin, intake, at_commit
) -> None:
    post = INTAKES[intake]
    with backend_dies_on_insert(admin, at_commit=at_commit):
        assert_unavailable(post(writer))
        assert UsageEvent.objects.count() == 0  # the transaction died with its backend

    stored_once(post, writer)


@on_postgresql
def test_a_programming_error_stays_a_500_and_is_logged(writer, admin, caplog) -> None:
    admin.execute(
        "CREATE FUNCTION fault_undefined() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'no such relation' USING ERRCODE = 'undefined_table'; END $$"
    )
    admin.execute(
        f"CREATE TRIGGER fault_undefined BEFORE INSERT ON {EVENTS_TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION fault_undefined()"
    )
    writer.raise_request_exception = False
    try:
        with caplog.at_level(logging.ERROR, logger="django.request"):
            response = INTAKES["events"](writer)
    finally:
        admin.execute(f"DROP TRIGGER fault_undefined ON {EVENTS_TABLE}")
        admin.execute("DROP FUNCTION fault_undefined()")

    assert response.status_code == 500 and "Retry-After" not in response
    assert response.json() == {"detail": "Internal server error."}
    assert "ProgrammingError" in caplog.text


# --- SQLite: the database locked by another writer ------------------------------------


@contextmanager
def sqlite_write_locked() -> Iterator[None]:
    """Another connection to the same database holds the write lock (BEGIN IMMEDIATE),
    as a long migration or a stuck writer would."""
    name = connection.settings_dict["NAME"]
    other = sqlite3.connect(name, uri=name.startswith("file:"), timeout=0)
    other.isolation_level = None
    other.execute("BEGIN IMMEDIATE")
    # Django waits up to OPTIONS["timeout"] (30 s) for a file lock: a short wait here.
    saved = connection.settings_dict["OPTIONS"].get("timeout")
    connection.close()
    connection.settings_dict["OPTIONS"]["timeout"] = 0.1
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
        connection.close()
        connection.settings_dict["OPTIONS"]["timeout"] = saved


@on_sqlite
@pytest.mark.parametrize("intake", ["events", "otlp", "litellm"], ids=str)
def test_a_locked_sqlite_database_answers_503_and_the_retry_stores_once(writer, intake) -> None:
    post = INTAKES[intake]
    with sqlite_write_locked():
        assert_unavailable(post(writer))
    assert UsageEvent.objects.count() == 0

    stored_once(post, writer)


@on_sqlite
@pytest.mark.parametrize("write", ["budget", "management"], ids=str)
def test_a_locked_sqlite_database_answers_503_on_the_management_writes(writer, write) -> None:
    post, ok = WRITES[write]
    with sqlite_write_locked():
        assert_unavailable(post(writer))

    assert post(writer).status_code == ok
