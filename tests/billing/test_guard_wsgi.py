"""The guard's WSGI front (billing.guard_wsgi): decisions answered in front of Django
exactly as GuardApi answers them, every other request handed to Django untouched.

Requests go to the WSGI callables themselves (Django's test client bypasses them), on
whatever the suite runs on; on PostgreSQL with Redis the decisions read hot counters.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.core import signals
from django.db import connection
from django.test import RequestFactory

from billing import apis, hotstate
from billing.guard_wsgi import GuardWsgi
from config.wsgi import application, django_application
from finops.models import Tenant

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("fresh_guard"),
]

MODEL = "gpt-4o-2024-08-06"
Answer = tuple[str, dict[str, str], bytes]


def environ(
    body: Any = None,
    *,
    key: str | None = None,
    method: str = "POST",
    path: str = "/api/v1/guard",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    all_headers = {"host": "testserver", **(headers or {})}
    if key:
        all_headers["authorization"] = f"Bearer {key}"
    request = RequestFactory().generic(
        method, path, data, content_type="application/json", headers=all_headers
    )
    return request.environ


def call(app: Any, env: dict[str, Any]) -> Answer:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.append((status, dict(headers)))

    chunks: Iterable[bytes] = app(env, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    status, headers = started[0]
    return status, headers, body


def refuse(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    raise AssertionError("handed to Django")


class Recorder:
    """Django's application, counting the requests it is handed."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return django_application(environ, start_response)


def test_production_serves_the_front() -> None:
    assert isinstance(application, GuardWsgi)
    assert application.django_app is django_application


@pytest.mark.parametrize("cap", ["1000000", "0"], ids=["allow", "block"])
def test_a_decision_is_answered_in_front_of_django_as_guard_api_answers_it(
    acme, acme_client, cap
) -> None:
    Tenant.objects.filter(pk=acme.pk).update(monthly_cap=Decimal(cap))
    body = {"feature": "document_summarization", "model": MODEL}
    by_django = call(django_application, environ(body, key=acme_client.key))
    in_front = call(GuardWsgi(refuse), environ(body, key=acme_client.key))
    assert by_django[0] == "200 OK"
    assert json.loads(by_django[2])["decision"] == ("allow" if cap != "0" else "block")
    assert in_front == by_django


def test_the_front_reads_a_body_it_is_given_in_one_piece(acme, acme_client) -> None:
    env = environ({"model": MODEL}, key=acme_client.key, headers={"accept": "application/json"})
    status, headers, body = call(GuardWsgi(refuse), env)
    assert status == "200 OK"
    assert headers["Content-Length"] == str(len(body))
    assert json.loads(body)["decision"] == "allow"


def _requests(acme: Tenant, keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    ok = {"tenant": "acme", "model": MODEL}
    return {
        "no credentials": environ(ok),
        "another scheme": environ(ok, headers={"authorization": f"Token {keys['operator']}"}),
        "unknown key": environ(ok, key="fo_nope_nope"),
        "key without the ingest scope": environ(ok, key=keys["reader"]),
        "another tenant's slug": environ({"tenant": "globex", "model": MODEL}, key=keys["acme"]),
        "unknown tenant": environ({"tenant": "nobody", "model": MODEL}, key=keys["operator"]),
        "operator key without a tenant": environ({"model": MODEL}, key=keys["operator"]),
        "field errors": environ({"tenant": "acme", "colour": 1}, key=keys["operator"]),
        "malformed JSON": environ(b"{", key=keys["operator"]),
        "empty body": environ(b"", key=keys["operator"]),
        "too large": environ(b" " * (apis.GUARD_MAX_BODY + 1), key=keys["operator"]),
        "GET": environ(key=keys["operator"], method="GET"),
        "OPTIONS": environ(key=keys["operator"], method="OPTIONS"),
        "Accept text/html": environ(ok, key=keys["operator"], headers={"accept": "text/html"}),
        "empty Accept": environ(ok, key=keys["operator"], headers={"accept": ""}),
        "query string": environ(ok, key=keys["operator"], path="/api/v1/guard?format=xml"),
        "host not allowed": environ(ok, key=keys["operator"], headers={"host": "evil.example"}),
        "trailing slash": environ(ok, key=keys["operator"], path="/api/v1/guard/"),
    }


def test_every_other_request_is_answered_by_django(acme, globex, make_client) -> None:
    keys = {
        "operator": make_client(None, ["ingest", "read"]).key,
        "acme": make_client(acme, ["ingest"]).key,
        "reader": make_client(acme, ["read"]).key,
    }
    names = list(_requests(acme, keys))
    for name in names:
        # Fresh environs: a request body can be read once.
        by_django = call(django_application, _requests(acme, keys)[name])
        recorder = Recorder()
        in_front = call(GuardWsgi(recorder), _requests(acme, keys)[name])
        assert recorder.calls == 1, name
        assert in_front == by_django, name
        assert b'"decision"' not in by_django[2], name


def test_the_front_reads_changed_settings_again(acme_client, settings) -> None:
    """The front reads its settings once, and again after a change (`setting_changed`).
    (Django's SecurityMiddleware reads its own once, when the handler is built.)"""

    def request(host: str = "guard.example") -> dict[str, Any]:
        return environ({"model": MODEL}, key=acme_client.key, headers={"host": host})

    assert call(GuardWsgi(refuse), request("testserver"))[0] == "200 OK"
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    settings.ALLOWED_HOSTS = ["guard.example"]
    by_django = call(django_application, request())
    in_front = call(GuardWsgi(refuse), request())
    assert in_front == by_django
    assert in_front[1]["X-Frame-Options"] == "SAMEORIGIN"
    recorder = Recorder()
    call(GuardWsgi(recorder), request("testserver"))  # no longer an allowed host
    assert recorder.calls == 1
    # The redirect is SecurityMiddleware's to make (this handler's was built without it, so
    # Django answers the decision itself): the front must hand the request over.
    settings.SECURE_SSL_REDIRECT = True
    recorder = Recorder()
    assert call(GuardWsgi(recorder), request()) == call(django_application, request())
    assert recorder.calls == 1


def test_an_error_while_deciding_is_answered_as_django_answers_it(acme_client, monkeypatch) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the guard broke")

    monkeypatch.setattr(apis, "guard_decide", broken)
    by_django = call(django_application, environ({"model": MODEL}, key=acme_client.key))
    in_front = call(GuardWsgi(refuse), environ({"model": MODEL}, key=acme_client.key))
    assert by_django[0].startswith("500")
    assert json.loads(by_django[2]) == {"detail": "Internal server error."}
    assert in_front == by_django


def test_the_database_upkeep_follows_a_decision_that_read_the_database(
    acme, acme_client, settings
) -> None:
    """Django's request signals (which close a broken or aged connection) are sent after
    a decision that read the database, and spared a decision answered from memory."""
    settings.FINOPS_GUARD_POLICY_TTL = 60
    settings.FINOPS_API_KEY_CACHE_SECONDS = 60
    # A cap, so that each decision has a spend to check (without one, neither path reads
    # anything after the first decision).
    acme.monthly_cap = Decimal("100")
    acme.save(update_fields=["monthly_cap"])
    finished: list[int] = []

    def count(**kwargs: Any) -> None:
        finished.append(1)

    front = GuardWsgi(refuse)
    body = {"feature": "document_summarization", "model": MODEL}
    signals.request_finished.connect(count)
    try:
        assert call(front, environ(body, key=acme_client.key))[0] == "200 OK"
        assert finished == [1]  # the key, the policies, the counters: read
        assert call(front, environ(body, key=acme_client.key))[0] == "200 OK"
    finally:
        signals.request_finished.disconnect(count)
    # With hot counters the second decision needed nothing but memory and Redis; without
    # them the guard reads the ledger every time.
    assert finished == ([1] if hotstate.enabled() else [1, 1])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_a_decision_after_the_server_dropped_the_connection_reconnects(acme, acme_client) -> None:
    front = GuardWsgi(refuse)
    body = {"feature": "document_summarization", "model": MODEL}
    assert call(front, environ(body, key=acme_client.key))[0] == "200 OK"
    if connection.connection is not None:  # kept open (CONN_MAX_AGE): the server drops it
        backend = connection.connection.info.backend_pid
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend])
    # Policies are read again (FINOPS_GUARD_POLICY_TTL is 0 here), on a connection the
    # upkeep after the first decision left to be checked before its next use.
    assert call(front, environ(body, key=acme_client.key))[0] == "200 OK"


def test_a_worker_sets_what_it_loaded_aside_from_the_garbage_collector() -> None:
    """finops.wsgi freezes the objects loaded with the app (the URLconf and its views
    included), so the collector's full collections do not walk them during requests."""
    assert isinstance(application, GuardWsgi)
    assert "billing.apis" in sys.modules and "console.views" in sys.modules
    assert gc.get_freeze_count() > 10_000
