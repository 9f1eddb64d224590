"""Prometheus counters that any app may move, and the middleware that times requests.

Defined here, in the core, so that every layer can count without importing upward; the
scrape (`ops.metrics`, `GET /metrics`) reads them with what it measures at scrape time.

Under several gunicorn workers each process counts on its own: with
`PROMETHEUS_MULTIPROC_DIR` set (before the first import of `prometheus_client`),
prometheus-client keeps the values in files there and the scrape adds up every
process's (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

# The intakes, as they label `finops_events_total`.
REST, OTLP, LITELLM = "rest", "otlp", "litellm"

EVENTS = Counter(
    "finops_events",
    "Usage events posted, per intake and outcome (accepted, duplicate, rejected; skipped: "
    "a span or payload that bills nothing).",
    ["intake", "outcome"],
)

GUARD_DECISIONS = Counter(
    "finops_guard_decisions",
    "Guard decisions, per error_type (none: allowed).",
    ["error_type"],
)

HTTP_REQUESTS = Counter(
    "finops_http_requests",
    "HTTP requests Django answered, per route, method and status.",
    ["route", "method", "status"],
)

HTTP_DURATION = Histogram(
    "finops_http_request_duration_seconds",
    "Time Django took to answer, per route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Anything else is counted as OTHER: a client cannot grow the label's values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
# A request no URL pattern matched (a 404, or a redirect to HTTPS before routing).
UNMATCHED = "unmatched"


def events_counted(
    *, intake: str, accepted: int = 0, duplicate: int = 0, rejected: int = 0, skipped: int = 0
) -> None:
    """Count one request's events on `intake` (REST, OTLP or LITELLM)."""
    for outcome, count in (
        ("accepted", accepted),
        ("duplicate", duplicate),
        ("rejected", rejected),
        ("skipped", skipped),
    ):
        if count:
            EVENTS.labels(intake, outcome).inc(count)


def guard_decision_counted(error_type: str | None) -> None:
    """Count one guard decision; `error_type` as the decision carries it (None: allowed)."""
    GUARD_DECISIONS.labels(error_type or "none").inc()


class RequestMetricsMiddleware:
    """Counts and times each request by its URL pattern (`api/v1/statements/<int:...>`),
    never by its path: the labels stay as few as the routes. Placed first in
    MIDDLEWARE, it times the whole of Django's answer, the guard's decisions included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        route = match.route if match is not None else UNMATCHED
        method = request.method if request.method in _METHODS else OTHER
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        HTTP_DURATION.labels(route, method).observe(elapsed)
        return response
