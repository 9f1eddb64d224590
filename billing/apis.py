from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import (
    HasManageScope,
    HasReadScope,
    IsOperatorKey,
    tenant_in_scope,
)
from finops.models import ApiKey, Tenant
from finops.pagination import time_keyset_page
from ingestion.models import Feature

from .alerts import alert_json
from .budgets import budget_create, limit_delete, limit_update, rate_limit_create
from .models import Budget, RateLimit
from .policies import feature_policy_update
from .selectors import alert_list, budget_list, rate_limit_list
from .serializers import (
    AlertQuerySerializer,
    BudgetSerializer,
    FeatureSerializer,
    LimitQuerySerializer,
    RateLimitSerializer,
)


def _read_or_manage(request: Request) -> list:
    scope = HasReadScope() if request.method in ("GET", "HEAD", "OPTIONS") else HasManageScope()
    return [IsAuthenticated(), IsOperatorKey(), scope]


# --- Budgets and rate limits -----------------------------------------------------------

SELF_SERVICE_ONLY = (
    "A tenant key manages only limits on an end user (user) or on one of its own API keys "
    "(api_key); its tenant-wide, feature-wide and global limits are the operator's."
)


def _page(serializer_class: type[serializers.Serializer], name: str) -> serializers.Serializer:
    return inline_serializer(name, {"results": serializer_class(many=True),
                                    "next": serializers.URLField(allow_null=True)})  # fmt: skip


class LimitApi(APIView):
    """Budgets and rate limits. Operator keys: every limit. A tenant key: its own tenant's
    (another tenant's, or a global one, is 404), and it writes only those on an end user
    or on one of its own API keys (others: 403). `read` to list and get, `manage` to
    write."""

    def get_permissions(self) -> list:
        scope = HasReadScope() if self.request.method in SAFE_METHODS else HasManageScope()
        return [IsAuthenticated(), scope]

    @property
    def key_tenant(self) -> Tenant | None:
        return self.request.auth.tenant

    def context(self) -> dict[str, Tenant | None]:
        return {"key_tenant": self.key_tenant}

    def visible(self, selector: Callable[..., QuerySet]) -> QuerySet:
        """The limits this key may read."""
        return selector(tenant=self.key_tenant, tenant_only=self.key_tenant is not None)

    def listed(self, selector: Callable[..., QuerySet]) -> QuerySet:
        query = LimitQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        tenant = tenant_in_scope(self.request, query.validated_data.get("tenant"))
        return selector(tenant=tenant, tenant_only=self.key_tenant is not None)

    def check_self_service(
        self, stored: Budget | RateLimit | None, fields: dict[str, Any] | None = None
    ) -> None:
        """For a tenant key: the limit it writes, before (`stored`) and after the write
        (`stored` with `fields`), names an end user or one of the tenant's own API keys,
        and no other key (an operator key's limit stays the operator's)."""
        key_tenant = self.key_tenant
        if key_tenant is None:
            return

        def tenants_own(user: str, api_key: ApiKey | None) -> bool:
            if api_key is not None and api_key.tenant_id != key_tenant.id:
                return False
            return bool(user) or api_key is not None

        if stored is not None and not tenants_own(stored.user, stored.api_key):
            raise exceptions.PermissionDenied(SELF_SERVICE_ONLY)
        if fields is not None:
            user = fields.get("user", stored.user if stored else "")
            api_key = fields.get("api_key", stored.api_key if stored else None)
            if not tenants_own(user, api_key):
                raise exceptions.PermissionDenied(SELF_SERVICE_ONLY)


class LimitsApi(LimitApi):
    """List (newest first) and create; the subclass names the kind of limit."""

    serializer: type[serializers.ModelSerializer]
    selector: Callable[..., QuerySet]
    create: Callable[..., Any]

    def get(self, request: Request) -> Response:
        rows, next_url = time_keyset_page(request, self.listed(type(self).selector),
                                          time_field="created_at")  # fmt: skip
        return Response({"results": self.serializer(rows, many=True).data, "next": next_url})

    def post(self, request: Request) -> Response:
        serializer = self.serializer(data=request.data, context=self.context())
        serializer.is_valid(raise_exception=True)
        self.check_self_service(None, serializer.validated_data)
        limit = type(self).create(**serializer.validated_data)
        return Response(self.serializer(limit).data, status=status.HTTP_201_CREATED)


class LimitDetailApi(LimitApi):
    """Get, change and delete one limit."""

    serializer: type[serializers.ModelSerializer]
    selector: Callable[..., QuerySet]

    def stored(self, path: dict[str, int]) -> Budget | RateLimit:
        """The limit the path names (its one id: budget_id or rate_limit_id)."""
        (limit_id,) = path.values()
        return get_object_or_404(self.visible(type(self).selector), id=limit_id)

    def get(self, request: Request, **path: int) -> Response:
        return Response(self.serializer(self.stored(path)).data)

    def patch(self, request: Request, **path: int) -> Response:
        limit = self.stored(path)
        self.check_self_service(limit)
        serializer = self.serializer(limit, data=request.data, partial=True,
                                     context=self.context())  # fmt: skip
        serializer.is_valid(raise_exception=True)
        self.check_self_service(limit, serializer.validated_data)
        with transaction.atomic():
            limit = limit_update(limit, serializer.validated_data)
        return Response(self.serializer(limit).data)

    def delete(self, request: Request, **path: int) -> Response:
        limit = self.stored(path)
        self.check_self_service(limit)
        limit_delete(limit)
        return Response(status=status.HTTP_204_NO_CONTENT)


_LIST_PARAMETERS = [OpenApiParameter("tenant", str), OpenApiParameter("limit", int),
                    OpenApiParameter("cursor", str)]  # fmt: skip


def _list_schema(serializer: type[serializers.Serializer], name: str, operation: str) -> Any:
    return extend_schema_view(
        get=extend_schema(parameters=_LIST_PARAMETERS, responses=_page(serializer, name),
                          operation_id=operation),
        post=extend_schema(request=serializer, responses={201: serializer}),
    )  # fmt: skip


def _detail_schema(serializer: type[serializers.Serializer]) -> Any:
    return extend_schema_view(
        get=extend_schema(responses=serializer),
        patch=extend_schema(request=serializer, responses=serializer),
        delete=extend_schema(responses={204: None}),
    )


@_list_schema(BudgetSerializer, "BudgetPage", "api_v1_budgets_list")
class BudgetsApi(LimitsApi):
    serializer, selector, create = BudgetSerializer, budget_list, budget_create


@_detail_schema(BudgetSerializer)
class BudgetDetailApi(LimitDetailApi):
    serializer, selector = BudgetSerializer, budget_list


@_list_schema(RateLimitSerializer, "RateLimitPage", "api_v1_rate_limits_list")
class RateLimitsApi(LimitsApi):
    serializer, selector, create = RateLimitSerializer, rate_limit_list, rate_limit_create


@_detail_schema(RateLimitSerializer)
class RateLimitDetailApi(LimitDetailApi):
    serializer, selector = RateLimitSerializer, rate_limit_list


class AlertsApi(APIView):
    """Alerts, newest first. A tenant key sees its own tenant's alerts only."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("kind", str),
            OpenApiParameter("severity", str),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("limit", int),
            OpenApiParameter("cursor", str),
        ],  # fmt: skip
        responses={200: OpenApiResponse(description='{"results": [alert], "next": URL|null}')},
    )
    def get(self, request: Request) -> Response:
        query = AlertQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        key_tenant = request.auth.tenant
        tenant = tenant_in_scope(request, params.get("tenant"))
        alerts = alert_list(
            tenant=tenant,
            tenant_only=key_tenant is not None,
            kind=params.get("kind"),
            severity=params.get("severity"),
            since=params.get("since"),
        )
        rows, next_url = time_keyset_page(request, alerts, time_field="created_at")
        return Response({"results": [alert_json(a) for a in rows], "next": next_url})


class FeatureApi(APIView):
    """A feature's policy: lifecycle, default and fallback model, workload class and
    allowed regions (the savings ledger's levers), kill switches (listed;
    `kill_switch_all` sets or clears the one for every tenant). Operator keys only:
    features are shared by all tenants, and their names are created from any tenant's
    events, so a tenant key must not list or probe them."""

    def get_permissions(self) -> list:
        return _read_or_manage(self.request)

    @extend_schema(responses=FeatureSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(FeatureSerializer(get_object_or_404(Feature, key=key)).data)

    @extend_schema(request=FeatureSerializer, responses=FeatureSerializer)
    def patch(self, request: Request, key: str) -> Response:
        feature = get_object_or_404(Feature, key=key)
        serializer = FeatureSerializer(feature, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        feature = feature_policy_update(feature=feature, set_by=f"API key {request.auth.prefix}",
                                        **serializer.validated_data)  # fmt: skip
        return Response(FeatureSerializer(feature).data)
