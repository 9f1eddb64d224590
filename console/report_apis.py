"""The savings ledger and the quarterly report over the API."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import HasReadScope, IsOperatorKey, tenant_in_scope
from finops.queries import AlignedRangeQuery
from finops.serializers import StrictSerializer

from .economics import feature_reach_report, unit_economics
from .models import FeatureReach
from .quarterly import Quarter, quarterly_report
from .quarterly_pdf import quarterly_download
from .savings import savings_compute

MAX_WINDOW = timedelta(days=400)


class SavingsQuerySerializer(AlignedRangeQuery):
    boundary = "day"
    boundary_error = "Must fall on a day boundary (UTC): the levers are priced per day."
    max_days = MAX_WINDOW.days
    tenant = serializers.CharField(required=False)


class SavingsApi(APIView):
    """What each optimization lever saved over [from, to) and would save per month, and
    the recommendations ranked by saving, for every tenant or one. A tenant key sees its
    own tenant's."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("tenant", str),
        ],
        responses={
            200: OpenApiResponse(
                description='{"from", "to", "tenant", "cost", "calls", "unpriced_calls", '
                '"calls_left_out", "cost_left_out", '
                '"levers": [{"lever", "label", "saved", "potential_monthly_saving", "rows", ...}], '
                '"recommendations": [{"lever", "feature", "text", "monthly_saving"}]}'
            )
        },
    )
    def get(self, request: Request) -> Response:
        query = SavingsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = tenant_in_scope(request, params.get("tenant"))
        savings = savings_compute(start=params["from"], end=params["to"], tenant=tenant)
        return Response(savings.as_json())


class QuarterQuerySerializer(StrictSerializer):
    quarter = serializers.CharField(required=False, help_text="YYYY-Qn; default: this quarter.")

    def validate_quarter(self, value: str) -> Quarter:
        try:
            return Quarter.parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


def _quarter(request: Request) -> Quarter:
    query = QuarterQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data.get("quarter") or Quarter.of(timezone.now())


class QuarterlyReportApi(APIView):
    """The quarterly FinOps report across tenants (operator keys: it holds every tenant's
    margin)."""

    permission_classes = [IsAuthenticated, HasReadScope, IsOperatorKey]

    @extend_schema(
        parameters=[OpenApiParameter("quarter", str)],
        responses={
            200: OpenApiResponse(
                description='{"quarter", "from", "to", "kpis": {...}, "features", "savings", '
                '"retired_features", "economics", "optimization_log", "projection_accuracy", '
                '"recommendations", "notes"}'
            )
        },
    )
    def get(self, request: Request) -> Response:
        report = quarterly_report(quarter=_quarter(request), now=timezone.now())
        return Response(report.as_json())


class QuarterlyReportPdfApi(APIView):
    """The same report as a PDF."""

    permission_classes = [IsAuthenticated, HasReadScope, IsOperatorKey]

    @extend_schema(
        parameters=[OpenApiParameter("quarter", str)],
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request) -> HttpResponse:
        return quarterly_download(quarterly_report(quarter=_quarter(request), now=timezone.now()))


class EconomicsQuerySerializer(SavingsQuerySerializer):
    tenant = None  # across tenants only


class EconomicsApi(APIView):
    """Unit economics over [from, to): revenue, cost and gross margin per tenant, tier
    and feature, the cross-subsidy between tiers, and each feature's reach against its
    share of cost in the quarter holding `from` (operator keys: every tenant's revenue)."""

    permission_classes = [IsAuthenticated, HasReadScope, IsOperatorKey]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True),
        ],
        responses={
            200: OpenApiResponse(
                description='{"from", "to", "currency", "tenants", "tiers", "features", '
                '"unallocated_revenue", "cross_subsidy": {"ratio", "pairs"}, "feature_reach"}'
            )
        },
    )
    def get(self, request: Request) -> Response:
        query = EconomicsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["from"], query.validated_data["to"]
        quarter = Quarter.of(start)
        reach = feature_reach_report(period=FeatureReach.Period.QUARTER,
                                     period_start=quarter.start.date())  # fmt: skip
        return Response({**unit_economics(start, end).as_json(), "feature_reach": reach.as_json()})
