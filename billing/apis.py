from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import (
    HasManageScope,
    HasReadScope,
    IsOperatorKey,
    tenant_in_scope,
)
from finops.pagination import time_keyset_page
from ingestion.models import Feature

from .alerts import alert_json
from .budgets import budget_create, budget_delete, budget_update
from .policies import feature_policy_update
from .selectors import alert_list, budget_list
from .serializers import (
    AlertQuerySerializer,
    BudgetSerializer,
    FeatureSerializer,
)


def _read_or_manage(request: Request) -> list:
    scope = HasReadScope() if request.method in ("GET", "HEAD", "OPTIONS") else HasManageScope()
    return [IsAuthenticated(), IsOperatorKey(), scope]


class BudgetsApi(APIView):
    """Budgets: operator keys; `read` to list, `manage` to create."""

    def get_permissions(self) -> list:
        return _read_or_manage(self.request)

    @extend_schema(responses=BudgetSerializer(many=True), parameters=[
        OpenApiParameter("limit", int), OpenApiParameter("cursor", str)])  # fmt: skip
    def get(self, request: Request) -> Response:
        rows, next_url = time_keyset_page(request, budget_list(), time_field="created_at")
        return Response({"results": BudgetSerializer(rows, many=True).data, "next": next_url})

    @extend_schema(request=BudgetSerializer, responses={201: BudgetSerializer})
    def post(self, request: Request) -> Response:
        serializer = BudgetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        budget = budget_create(**serializer.validated_data)
        return Response(BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)


class BudgetDetailApi(APIView):
    def get_permissions(self) -> list:
        return _read_or_manage(self.request)

    @extend_schema(responses=BudgetSerializer)
    def get(self, request: Request, budget_id: int) -> Response:
        return Response(BudgetSerializer(get_object_or_404(budget_list(), id=budget_id)).data)

    @extend_schema(request=BudgetSerializer, responses=BudgetSerializer)
    def patch(self, request: Request, budget_id: int) -> Response:
        budget = get_object_or_404(budget_list(), id=budget_id)
        serializer = BudgetSerializer(budget, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            budget = budget_update(budget=budget, **serializer.validated_data)
        return Response(BudgetSerializer(budget).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, budget_id: int) -> Response:
        budget_delete(budget=get_object_or_404(budget_list(), id=budget_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertsApi(APIView):
    """Alerts, newest first. A tenant key sees its own tenant's alerts only."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("kind", str),
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
            since=params.get("since"),
        )
        rows, next_url = time_keyset_page(request, alerts, time_field="created_at")
        return Response({"results": [alert_json(a) for a in rows], "next": next_url})


class FeatureApi(APIView):
    """A feature's policy: lifecycle, default and fallback model, kill switch. Operator
    keys only: features are shared by all tenants, and their names are created from any
    tenant's events, so a tenant key must not list or probe them."""

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
        feature = feature_policy_update(feature=feature, **serializer.validated_data)
        return Response(FeatureSerializer(feature).data)
