from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import HasReadScope, IsOperatorKey, tenant_in_scope
from finops.money import decimal_string
from finops.operator_serializers import MonthField
from finops.pagination import time_keyset_page
from finops.queries import TimeRangeQuery
from finops.serializers import StrictQuery, StrictSerializer

from .documents import statement_download, statement_json
from .focus import focus_csv
from .models import Statement
from .reconciliation import reconciliation
from .selectors import statement_list
from .usage import GRANULARITIES, GROUPS, MAX_ROWS, GroupsApart, TooManyRows, usage_report


class StatementQuerySerializer(StrictQuery):
    tenant = serializers.CharField(required=False)
    period = MonthField(required=False)
    status = serializers.ChoiceField(choices=Statement.Status.choices, required=False)


def _statements(request: Request):
    key_tenant = request.auth.tenant
    return statement_list(tenant=key_tenant)


class StatementsApi(APIView):
    """Statements, newest first. A tenant key sees its own tenant's only."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        operation_id="v1_statements_list",
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("period", str),
            OpenApiParameter("status", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("cursor", str),
        ],  # fmt: skip
        responses={200: OpenApiResponse(description='{"results": [statement], "next": URL}')},
    )
    def get(self, request: Request) -> Response:
        query = StatementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = tenant_in_scope(request, params.get("tenant"))
        rows = statement_list(tenant=tenant, period=params.get("period"),
                              status=params.get("status"))  # fmt: skip
        page, next_url = time_keyset_page(request, rows, time_field="created_at")
        return Response(
            {"results": [statement_json(s, lines=False) for s in page], "next": next_url}
        )


class StatementDetailApi(APIView):
    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(responses={200: OpenApiResponse(description="A statement with its lines")})
    def get(self, request: Request, statement_id: int) -> Response:
        return Response(statement_json(get_object_or_404(_statements(request), id=statement_id)))


class StatementPdfApi(APIView):
    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    def get(self, request: Request, statement_id: int) -> HttpResponse:
        statement = get_object_or_404(_statements(request), id=statement_id)
        return statement_download(statement, "pdf")


class StatementCsvApi(APIView):
    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request, statement_id: int) -> HttpResponse:
        statement = get_object_or_404(_statements(request), id=statement_id)
        return statement_download(statement, "csv")


class UsageQuerySerializer(TimeRangeQuery):
    group_by = serializers.CharField(required=False, allow_blank=True, default="")
    granularity = serializers.ChoiceField(choices=GRANULARITIES, default="day")
    tenant = serializers.CharField(required=False)

    def validate_group_by(self, value: str) -> list[str]:
        groups = [g.strip() for g in value.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown: {', '.join(unknown)}. Choose from {', '.join(GROUPS)}."
            )
        return list(dict.fromkeys(groups))

    def validate(self, attrs: dict) -> dict:
        start, end, granularity = attrs["from"], attrs["to"], attrs["granularity"]
        errors = {}
        if end <= start:
            errors["to"] = ["Must be after 'from'."]
        unit = "an hour" if granularity == "hour" else "a day (UTC)"
        for name, value in (("from", start), ("to", end)):
            value = value.astimezone(UTC)
            aligned = value.minute == value.second == value.microsecond == 0
            if granularity != "hour":
                aligned = aligned and value.hour == 0
            if not aligned:
                errors.setdefault(name, []).append(
                    f"Must fall on {unit} boundary: usage is kept per hour and per day."
                )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class UsageApi(APIView):
    """Usage by any of tenant, feature, model, prompt template, user, region, provider,
    routing tier, service tier, tenant tier and the reported tag, per hour, day or month.
    A tenant key sees its own tenant's usage only."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("group_by", str, description=f"Comma-separated: {', '.join(GROUPS)}"),
            OpenApiParameter("granularity", str),
            OpenApiParameter("tenant", str),
        ],  # fmt: skip
        responses={200: OpenApiResponse(description='{"results": [usage row], "next": null}')},
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = tenant_in_scope(request, params.get("tenant"))
        try:
            rows = usage_report(start=params["from"], end=params["to"],
                                group_by=params["group_by"], granularity=params["granularity"],
                                tenant=tenant)  # fmt: skip
        except GroupsApart as exc:
            raise serializers.ValidationError({"group_by": [str(exc)]}) from None
        except TooManyRows:
            raise serializers.ValidationError(
                {
                    "granularity": [
                        f"More than {MAX_ROWS} rows: narrow the range, group by "
                        "fewer fields or use a coarser granularity."
                    ]
                }  # fmt: skip
            ) from None
        return Response({"results": rows, "next": None})


class FocusQuerySerializer(StrictSerializer):
    period = MonthField()


class FocusExportApi(APIView):
    """A month's statements as a FinOps FOCUS dataset (CSV). Operator keys only."""

    permission_classes = [IsAuthenticated, IsOperatorKey, HasReadScope]

    @extend_schema(
        parameters=[OpenApiParameter("period", str, required=True)],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        query = FocusQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period = query.validated_data["period"]
        response = HttpResponse(focus_csv(period), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="focus-{period:%Y-%m}.csv"'
        return response


class ReconciliationApi(APIView):
    """Per provider: the month's priced events beside the bills staff entered."""

    permission_classes = [IsAuthenticated, IsOperatorKey, HasReadScope]

    @extend_schema(
        parameters=[OpenApiParameter("period", str, required=True)],
        responses={
            200: OpenApiResponse(
                description='{"period", "tolerance_percent", "results": [provider row]}'
            )
        },  # fmt: skip
    )
    def get(self, request: Request) -> Response:
        query = FocusQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period = query.validated_data["period"]
        rows = reconciliation(period)
        return Response(
            {
                "period": f"{period:%Y-%m}",
                "tolerance_percent": decimal_string(
                    settings.FINOPS_RECONCILIATION_TOLERANCE_PERCENT
                ),
                "results": [
                    {
                        "provider": r.provider,
                        "currency": r.currency,
                        "events": r.events,
                        "ledger": decimal_string(r.ledger),
                        "billed": decimal_string(r.billed),
                        "difference": decimal_string(r.difference),
                        "percent": decimal_string(r.percent),
                        "flagged": r.flagged,
                        "note": r.note,
                    }
                    for r in rows
                ],
            }
        )
