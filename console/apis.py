from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import HasReadScope, tenant_in_scope
from finops.models import ServiceTier, Tenant
from finops.queries import AlignedRangeQuery
from finops.serializers import StrictSerializer

from .metrics import Window, metrics_compute
from .projection import projection_accuracy, projection_compute, projection_months

MAX_WINDOW = timedelta(days=400)


# The rollups' slices a metric can be read on (`?region=eu`; '' for "not set").
SLICES = {"region": 64, "provider": 100, "service_tier": 16, "routing_tier": 64,
          "tenant_tier": 16, "tag": 200}  # fmt: skip


class MetricsQuerySerializer(AlignedRangeQuery):
    max_days = MAX_WINDOW.days
    tenant = serializers.CharField(required=False)
    feature = serializers.CharField(required=False, max_length=128)
    region = serializers.CharField(required=False, allow_blank=True, max_length=64)
    provider = serializers.CharField(required=False, allow_blank=True, max_length=100)
    service_tier = serializers.ChoiceField(required=False, choices=ServiceTier.choices)
    routing_tier = serializers.CharField(required=False, allow_blank=True, max_length=64)
    tenant_tier = serializers.ChoiceField(required=False, choices=Tenant.Tier.choices)
    tag = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs: dict) -> dict:
        super().validate(attrs)
        if "tenant_tier" in attrs and "tenant" in attrs:
            raise serializers.ValidationError(
                {"tenant_tier": ["A tenant has one tier: give the tenant or the tier."]}
            )
        return attrs


class MetricsApi(APIView):
    """The predictive metrics of the weekly review over [from, to), for every tenant or one,
    every feature or one, from the rollups. A tenant key sees its own tenant's only."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("tenant", str),
            OpenApiParameter("feature", str),
            *(OpenApiParameter(name, str) for name in SLICES),
        ],  # fmt: skip
        responses={
            200: OpenApiResponse(
                description='{"from", "to", "tenant", "feature", "slices", "results": [{"name", '
                '"label", "value", "status" (healthy | warning | no_data), "threshold", '
                '"warn_when", "unit", "message", "breakdown"?}]}'
            )
        },  # fmt: skip
    )
    def get(self, request: Request) -> Response:
        query = MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = tenant_in_scope(request, params.get("tenant"))
        slices = tuple((name, params[name]) for name in SLICES if name in params)
        if tenant is not None and "tenant_tier" in params:
            raise serializers.ValidationError(
                {"tenant_tier": ["A tenant key reads its own tenant: its tier is one."]}
            )
        window = Window(params["from"], params["to"], tenant, params.get("feature"), slices)
        return Response({
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "tenant": tenant.slug if tenant else None,
            "feature": window.feature,
            "slices": dict(slices),
            "results": [m.as_json() for m in metrics_compute(window)],
        })  # fmt: skip


class ProjectionQuerySerializer(StrictSerializer):
    tenant = serializers.CharField(required=False)


class ProjectionApi(APIView):
    """This month's cost projected to its end, per feature and in total, with the planned
    features staff recorded (operator-wide only), the six months from this one, and (all
    tenants only) how the projections kept for ended months compared with their actual
    cost. A tenant key sees its own tenant's."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        parameters=[OpenApiParameter("tenant", str)],
        responses={
            200: OpenApiResponse(
                description='{"month", "as_of", "actual_to_date", "projected_month_end", '
                '"features": [...], "planned": [...], "daily": [{"date", "actual", "projected"}], '
                '"months": [{"month", "actual_to_date", "projected"}], "accuracy": [{"month", '
                '"actual", "projections": [{"made_on", "months_ahead", "projected", "error", '
                '"flagged"}]}] | null}'
            )
        },  # fmt: skip
    )
    def get(self, request: Request) -> Response:
        query = ProjectionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant = tenant_in_scope(request, query.validated_data.get("tenant"))
        now = timezone.now()
        result = projection_compute(now=now, tenant=tenant)
        months = projection_months(now=now, tenant=tenant, current=result)
        # The kept projections are of all tenants: no tenant's own accuracy.
        accuracy = None if tenant else [m.as_json() for m in projection_accuracy(now=now)]
        return Response(
            {"tenant": tenant.slug if tenant else None}
            | result.as_json()
            | {"months": [m.as_json() for m in months], "accuracy": accuracy}
        )
