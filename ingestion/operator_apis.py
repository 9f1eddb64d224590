"""Management API of ingestion: the features events name. Features are shared by every
tenant (created on first sight in any tenant's events), so there is no tenant filter; a
feature's policy is read and changed at /api/v1/features/{key} (billing)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from finops.operator_apis import PAGE_PARAMETERS, ManageApi, page_response, query
from finops.pagination import time_keyset_page

from .models import Feature
from .operator_serializers import FeatureListSerializer, FeatureQuerySerializer


class FeaturesApi(ManageApi):
    @extend_schema(
        operation_id="manage_features_list",
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("task_type", str),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response("feature"),
    )
    def get(self, request: Request) -> Response:
        params = query(FeatureQuerySerializer, request)
        features = Feature.objects.all()
        if params.get("status"):
            features = features.filter(status=params["status"])
        if params.get("task_type"):
            features = features.filter(task_type=params["task_type"])
        rows, next_url = time_keyset_page(request, features, time_field="created_at")
        return Response({"results": FeatureListSerializer(rows, many=True).data,
                         "next": next_url})  # fmt: skip
