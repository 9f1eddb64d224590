"""`POST /api/v1/guard`: a plain Django view, on every model call's path.

Lean by design: no DRF dispatch (request wrapping, content negotiation, parsers), the
body decoded by msgspec, the answer encoded by it. Its errors are the DRF endpoints'
(same statuses, same `{"detail": ...}` or `{field: [message]}` bodies), and it passes
through the full middleware stack like every other view.
"""

from __future__ import annotations

from typing import Any

import msgspec
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from finops.authentication import key_from_header
from finops.metrics import guard_decision_counted
from finops.models import ApiKey, Tenant

from .policies import tenant_by_slug
from .rules import guard_decide
from .schema import GuardRequest, guard_request_decode

GUARD_MAX_BODY = 64 * 1024


@csrf_exempt
def guard_view(request: HttpRequest) -> HttpResponse:
    """Allow, downgrade or block one model call before it is made. The decision is data
    (always 200), never an HTTP error, so clients do not retry it as a failure."""
    key, refusal = _authenticated(request)
    if refusal is not None:
        return refusal
    if request.method != "POST":
        detail = f'Method "{request.method}" not allowed.'
        return _json(405, {"detail": detail}, headers={"Allow": "POST"})
    if _content_length(request) > GUARD_MAX_BODY:
        return _json(413, {"detail": "Request body too large."})
    status, payload = guard_answer(key=key, body=request.body)
    return _json(status, payload)


def guard_answer(*, key: ApiKey, body: bytes) -> tuple[int, Any]:
    """The status and JSON of a guard request from an authenticated key with the ingest
    scope. Nothing is reserved unless the status is 200."""
    if len(body) > GUARD_MAX_BODY:
        return 413, {"detail": "Request body too large."}
    data, errors = guard_request_decode(body)
    if data is None:
        return 400, errors
    tenant, status, error = _tenant(key, data)
    if tenant is None:
        return status, error
    decision = guard_decide(
        tenant=tenant,
        feature_key=data.feature,
        model=data.model,
        prompt_template_key=data.prompt_template,
        estimated_cost=data.estimated_cost,
        user=data.user,
        api_key_id=key.id,
    )
    guard_decision_counted(decision.error_type)
    return 200, decision


def _tenant(key: ApiKey, data: GuardRequest) -> tuple[Tenant | None, int, dict[str, Any]]:
    """The tenant asked about: a tenant key's own (another slug is 404), or for an
    operator key the one named."""
    if key.tenant is not None:
        if data.tenant is not None and data.tenant != key.tenant.slug:
            return None, 404, {"detail": "No such tenant."}
        return key.tenant, 200, {}
    if not data.tenant:
        return None, 400, {"tenant": ["Required with an operator key."]}
    tenant = tenant_by_slug(data.tenant)
    if tenant is None:
        return None, 404, {"detail": "No such tenant."}
    return tenant, 200, {}


def _authenticated(request: HttpRequest) -> tuple[ApiKey, None] | tuple[None, HttpResponse]:
    """The request's key if it may ask the guard, else DRF's answer: 401 without a valid
    key, 403 without the ingest scope."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None, _unauthorized(exceptions.NotAuthenticated.default_detail)
    try:
        key = key_from_header(header)
    except exceptions.AuthenticationFailed as exc:
        return None, _unauthorized(exc.detail)
    if not key.has_scope(ApiKey.Scope.INGEST):
        detail = f"This API key lacks the '{ApiKey.Scope.INGEST}' scope."
        return None, _json(403, {"detail": detail})
    return key, None


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # Django reads no body either


def _unauthorized(detail: Any) -> HttpResponse:
    return _json(401, {"detail": str(detail)}, headers={"WWW-Authenticate": "Bearer"})


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(msgspec.json.encode(payload), status=status, headers=headers,
                        content_type="application/json")  # fmt: skip
