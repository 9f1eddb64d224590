from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import HasReadScope
from finops.models import Tenant
from finops.pagination import time_keyset_page
from ingestion.selectors import tenant_for_key

from .documents import statement_csv, statement_json, statement_pdf
from .models import Statement
from .selectors import statement_list


class StatementQuerySerializer(serializers.Serializer):
    tenant = serializers.CharField(required=False)
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", required=False,
                                    error_messages={"invalid": "Use YYYY-MM."})  # fmt: skip
    status = serializers.ChoiceField(choices=Statement.Status.choices, required=False)


def _statements(request: Request):
    key_tenant = request.auth.tenant
    return statement_list(tenant=key_tenant)


class StatementsApi(APIView):
    """Statements, newest first. A tenant key sees its own tenant's only."""

    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(
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
        try:
            tenant = tenant_for_key(key_tenant=request.auth.tenant, slug=params.get("tenant"))
        except Tenant.DoesNotExist:
            raise NotFound("No such tenant.") from None
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
        response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{statement.number}.pdf"'
        return response


class StatementCsvApi(APIView):
    permission_classes = [IsAuthenticated, HasReadScope]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request, statement_id: int) -> HttpResponse:
        statement = get_object_or_404(_statements(request), id=statement_id)
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{statement.number}.csv"'
        return response
