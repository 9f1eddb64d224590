"""Management API of ingestion: the features events name. Features are shared by every
tenant (created on first sight in any tenant's events), so there is no tenant filter; a
feature's policy is read and changed at /api/v1/features/{key} (billing)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from finops.operator_apis import PAGE_PARAMETERS, ManageApi, page_response, query

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
        return self.list_page(request, Feature.objects.all(), FeatureListSerializer,
                              params=params, filters=("status", "task_type"))  # fmt: skip
