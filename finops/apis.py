from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .faults import API_PATHS


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "Health", {"status": serializers.CharField(), "database": serializers.CharField()}
        )
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            database = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            database = f"error: {exc.__class__.__name__}"
        healthy = database == "ok"
        return Response(
            {"status": "ok" if healthy else "degraded", "database": database},
            status=200 if healthy else 503,
        )


def server_error(request: HttpRequest) -> HttpResponse:
    """500s: JSON for API clients, Django's page elsewhere."""
    if request.path.startswith(API_PATHS):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
