"""`POST /api/v1/guard` answered in front of Django.

The guard is on every model call's path, and its decision costs less than the machinery
around it (Django's request object, eight middleware, DRF's dispatch). This WSGI layer
answers a plain, authenticated guard request itself and hands every other request,
untouched, to Django: other paths and methods, a query string, a Host or Accept header
that Django or DRF would refuse, missing or bad credentials, a key without the ingest
scope, and every guard request whose answer is not a decision (400, 404, 413). So those
answers, and their logging, stay GuardApi's; a decision carries the headers the
middleware and DRF add to GuardApi's, and the same JSON.

Django's `request_finished` (the database connections' upkeep) is sent after a decision
that read the database, or failed, as after any request; a decision answered from
memory and Redis alone touched no connection and sends no request signal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.db import connection
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation

from finops.authentication import key_from_header
from finops.models import ApiKey

from .apis import GUARD_MAX_BODY, GuardApi, guard_answer

GUARD_PATH = "/api/v1/guard"
_MIDDLEWARE = "django.middleware."

StartResponse = Callable[..., Any]


class GuardWsgi:
    """WSGI application: guard decisions here, everything else to `django_app`."""

    def __init__(self, django_app: WSGIHandler) -> None:
        self.django_app = django_app
        self._allow = ", ".join(GuardApi().allowed_methods)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != GUARD_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
        ):
            return self.django_app(environ, start_response)
        front = _front()
        if (
            front.secure_redirects
            or not _host_allowed(environ, front)
            or not _accepts_json(environ.get("HTTP_ACCEPT", "*/*"))
        ):
            return self.django_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if not 0 <= length <= GUARD_MAX_BODY:
            return self.django_app(environ, start_response)

        key, body = None, b""
        status, payload = 0, {}
        queried: list[bool] = []
        try:
            with connection.execute_wrapper(_noting(queried)):
                key = _key(environ.get("HTTP_AUTHORIZATION", ""))
                if key is not None:
                    body = environ["wsgi.input"].read(length)
                    status, payload = guard_answer(key=key, body=body)
        except Exception as exc:  # noqa: BLE001 - answered as Django answers a view's error
            queried.append(True)
            environ["wsgi.input"] = BytesIO(body)
            response = response_for_exception(WSGIRequest(environ), exc)
            return self._respond(response, front, start_response)
        finally:
            if queried:  # the database's upkeep, as after any request that used it
                signals.request_finished.send(sender=WSGIHandler)
        if status != 200:  # nothing was reserved: GuardApi gives its error, as always
            if key is not None:
                environ["wsgi.input"] = BytesIO(body)
            return self.django_app(environ, start_response)
        data = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), ("Allow", self._allow)]
        headers += front.headers(len(data))
        start_response("200 OK", headers)
        return [data]

    def _respond(
        self, response: HttpResponse, front: _Front, start_response: StartResponse
    ) -> list[bytes]:
        data = response.content
        for name, value in front.headers(len(data)):
            response.headers.setdefault(name, value)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [data]


def _noting(queried: list[bool]) -> Callable[..., Any]:
    def note(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        queried.append(True)
        return execute(sql, params, many, context)

    return note


def _key(header: str) -> ApiKey | None:
    """The key if it may ask the guard; None sends the request to DRF for its 401/403."""
    if not header:
        return None
    try:
        key = key_from_header(header)
    except exceptions.AuthenticationFailed:
        return None
    return key if key.has_scope(ApiKey.Scope.INGEST) else None


def _host_allowed(environ: dict[str, Any], front: _Front) -> bool:
    """Whether Django would take the Host header (`HttpRequest.get_host()`, which
    CommonMiddleware calls on every request); the unusual cases are left to it."""
    host = environ.get("HTTP_HOST")
    if not host or (front.use_x_forwarded_host and "HTTP_X_FORWARDED_HOST" in environ):
        return False
    return _host_valid(host)


@lru_cache(maxsize=64)
def _host_valid(host: str) -> bool:
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


@lru_cache(maxsize=64)
def _accepts_json(accept: str) -> bool:
    """Whether DRF's content negotiation takes this Accept header (else it answers 406)."""
    request = SimpleNamespace(query_params={}, headers={"accept": accept})
    renderers = [renderer() for renderer in GuardApi.renderer_classes]
    try:
        DefaultContentNegotiation().select_renderer(request, renderers)
    except exceptions.NotAcceptable:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Front:
    """What the front reads from the settings on each request, read once: settings do
    not change while a process serves (tests change them, and `setting_changed` makes
    the front read them again)."""

    secure_redirects: bool  # the redirect and HSTS: SecurityMiddleware's, left to Django
    use_x_forwarded_host: bool
    before_length: tuple[tuple[str, str], ...]
    length: bool
    after_length: tuple[tuple[str, str], ...]

    def headers(self, length: int) -> list[tuple[str, str]]:
        """What the middleware add to a JSON response of `length` bytes."""
        if not self.length:
            return [*self.before_length, *self.after_length]
        return [*self.before_length, ("Content-Length", str(length)), *self.after_length]


@lru_cache(maxsize=1)
def _front() -> _Front:
    """What the middleware in settings.MIDDLEWARE add to a JSON response (that sets no
    cookie and reads no session) on a plain-HTTP request, and the settings the front
    checks."""
    middleware = settings.MIDDLEWARE
    before, after = [], []
    if _MIDDLEWARE + "clickjacking.XFrameOptionsMiddleware" in middleware:
        before.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))
    if _MIDDLEWARE + "security.SecurityMiddleware" in middleware:
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            after.append(("X-Content-Type-Options", "nosniff"))
        policy = settings.SECURE_REFERRER_POLICY
        if policy:
            if isinstance(policy, str):
                policy = policy.split(",")
            after.append(("Referrer-Policy", ",".join(v.strip() for v in policy)))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            after.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return _Front(
        secure_redirects=bool(settings.SECURE_SSL_REDIRECT or settings.SECURE_HSTS_SECONDS),
        use_x_forwarded_host=settings.USE_X_FORWARDED_HOST,
        before_length=tuple(before),
        length=_MIDDLEWARE + "common.CommonMiddleware" in middleware,
        after_length=tuple(after),
    )


def _settings_changed(**kwargs: Any) -> None:
    _front.cache_clear()
    _host_valid.cache_clear()


signals.setting_changed.connect(_settings_changed)
