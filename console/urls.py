from __future__ import annotations

from django.urls import path

from . import operator_apis as manage
from .apis import MetricsApi, ProjectionApi
from .report_apis import EconomicsApi, QuarterlyReportApi, QuarterlyReportPdfApi, SavingsApi

urlpatterns = [
    path("api/v1/metrics", MetricsApi.as_view(), name="metrics"),
    path("api/v1/projection", ProjectionApi.as_view(), name="projection"),
    path("api/v1/savings", SavingsApi.as_view(), name="savings"),
    path("api/v1/economics", EconomicsApi.as_view(), name="economics"),
    path("api/v1/reports/quarterly", QuarterlyReportApi.as_view(), name="quarterly-report"),
    path(
        "api/v1/reports/quarterly/pdf",
        QuarterlyReportPdfApi.as_view(),
        name="quarterly-report-pdf",
    ),
    path(
        "api/v1/optimization-decisions",
        manage.OptimizationDecisionsApi.as_view(),
        name="manage-optimization-decisions",
    ),
    path(
        "api/v1/optimization-decisions/<int:decision_id>",
        manage.OptimizationDecisionDetailApi.as_view(),
        name="manage-optimization-decision",
    ),
    path(
        "api/v1/provisioned-offers",
        manage.ProvisionedOffersApi.as_view(),
        name="manage-provisioned-offers",
    ),
    path(
        "api/v1/provisioned-offers/<int:offer_id>",
        manage.ProvisionedOfferDetailApi.as_view(),
        name="manage-provisioned-offer",
    ),
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
