"""Bearer API keys for the REST API."""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from .models import ApiKey, Tenant
from .services import key_digest

_keys: dict[str, tuple[float, ApiKey | None]] = {}
_MAX_CACHED = 10_000


def key_by_prefix(prefix: str) -> ApiKey | None:
    """The key (with its tenant) of a prefix, kept in memory for
    FINOPS_API_KEY_CACHE_SECONDS: every request carries a key, and the lookup would be
    the guard's largest cost. A revoked key stops working on every worker within that
    time (at once on the worker that revoked it)."""
    ttl = settings.FINOPS_API_KEY_CACHE_SECONDS
    now = time.monotonic()
    if ttl > 0:
        hit = _keys.get(prefix)
        if hit is not None and hit[0] > now:
            return hit[1]
    key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if ttl > 0:
        if len(_keys) >= _MAX_CACHED:
            _keys.clear()
        _keys[prefix] = (now + ttl, key)
    return key


def key_cache_clear(**kwargs: object) -> None:
    _keys.clear()


def key_from_header(header: str) -> ApiKey:
    """The live key of a non-empty `Authorization` header, else AuthenticationFailed
    with what the client is told."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
    token = token.strip()
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "fo":
        raise exceptions.AuthenticationFailed("Invalid API key.")
    key = key_by_prefix(parts[1])
    if key is None or not hmac.compare_digest(key.digest, key_digest(token)):
        raise exceptions.AuthenticationFailed("Invalid API key.")
    if key.revoked_at is not None:
        raise exceptions.AuthenticationFailed("This API key has been revoked.")
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        key = key_from_header(header)
        return key, key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def tenant_in_scope(request: Request, slug: str | None) -> Tenant | None:
    """The tenant a request may read: its key's own, or for operator keys the one named
    (None: every tenant). Another tenant's slug, or an unknown one, is 404 alike."""
    key_tenant = request.auth.tenant
    if key_tenant is not None:
        if slug and slug != key_tenant.slug:
            raise exceptions.NotFound("No such tenant.")
        return key_tenant
    if not slug:
        return None
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise exceptions.NotFound("No such tenant.")
    return tenant


class _HasScope(permissions.BasePermission):
    scope = ""

    def has_permission(self, request: Request, view: object) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        if not key.has_scope(self.scope):
            self.message = f"This API key lacks the '{self.scope}' scope."
            return False
        return True


class HasIngestScope(_HasScope):
    scope = ApiKey.Scope.INGEST


class HasReadScope(_HasScope):
    scope = ApiKey.Scope.READ


class HasManageScope(_HasScope):
    scope = ApiKey.Scope.MANAGE


class IsOperatorKey(permissions.BasePermission):
    message = "This endpoint needs an operator key."

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, ApiKey) and request.auth.is_operator


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how API keys are sent."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "fo_... API key"}
