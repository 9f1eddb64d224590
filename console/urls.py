from __future__ import annotations

from django.urls import path

from . import operator_apis as manage
from .apis import MetricsApi, ProjectionApi

urlpatterns = [
    path("api/v1/metrics", MetricsApi.as_view(), name="metrics"),
    path("api/v1/projection", ProjectionApi.as_view(), name="projection"),
    path(
        "api/v1/retirement-reviews",
        manage.RetirementReviewsApi.as_view(),
        name="manage-retirement-reviews",
    ),
    path(
        "api/v1/retirement-reviews/<int:review_id>",
        manage.RetirementReviewDetailApi.as_view(),
        name="manage-retirement-review",
    ),
    path(
        "api/v1/retirement-reviews/<int:review_id>/decision",
        manage.RetirementReviewDecisionApi.as_view(),
        name="manage-retirement-review-decision",
    ),
]
