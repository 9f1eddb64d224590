"""A lost or refused database answers 503 with `Retry-After`, never a bare 500.

One middleware for every view, DRF's and the plain ones (the guard): DRF's exception
handler passes a database error on, so it reaches `process_exception` like any other
view's. Nothing commits outside a view (no ATOMIC_REQUESTS): a failed COMMIT is raised by
the view's own `transaction.atomic`, so it is caught here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

# The paths that answer JSON (the rest is the admin and the portal, which are pages).
API_PATHS = ("/api/", "/v1/")
# A terminated backend, a refused or dropped connection, a server shutting down, a lock
# or statement timeout, SQLite's "database is locked": the same request can succeed
# later. A programming error (ProgrammingError, IntegrityError, ...) is not one of them.
DATABASE_FAULTS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def database_unavailable() -> HttpResponse:
    """The answer to a request the database could not serve: clients retry a 503 after
    `Retry-After` seconds; every intake is idempotent by event id, so a retry of a write
    that did commit stores nothing twice."""
    response = JsonResponse({"detail": "The database is unavailable; try again later."}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def connections_reset() -> None:
    """Drop every open connection: the next query connects afresh. The end of the request
    (close_old_connections) would test a broken persistent connection with one more round
    trip and then drop it; here no round trip is spent on a database that is away, and
    no caller that sends no request signals (the test client) keeps a dead connection.
    A connection inside an atomic block is in someone else's transaction (a test's)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            with suppress(DatabaseError):
                connection.close()


class DatabaseFaultMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_FAULTS) or not request.path.startswith(API_PATHS):
            return None  # Django's 500 handler answers and logs it
        # One line, no traceback: an outage repeats it on every request.
        logger.warning("Database unavailable for %s %s: %s: %s", request.method, request.path,
                       type(exception).__name__, exception)  # fmt: skip
        connections_reset()
        return database_unavailable()
