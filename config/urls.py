from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import console.operator_apis as console_manage
import finops.operator_apis as finops_manage
import ingestion.operator_apis as ingestion_manage
import statements.operator_apis as statements_manage
from billing.apis import AlertsApi, BudgetDetailApi, BudgetsApi, FeatureApi
from billing.guard.views import guard_view
from console.apis import MetricsApi, ProjectionApi
from console.views import dashboard_view
from finops.apis import HealthApi
from ingestion.apis import EventsApi, LiteLLMApi, OtlpTracesApi
from ops.views import metrics_view
from statements.apis import (
    FocusExportApi,
    ReconciliationApi,
    StatementCsvApi,
    StatementDetailApi,
    StatementPdfApi,
    StatementsApi,
    UsageApi,
)

admin.site.site_header = "finops console"
admin.site.site_title = "finops"
admin.site.index_title = "FinOps console"

handler500 = "finops.apis.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("api/v1/health", HealthApi.as_view(), name="health"),
    path("metrics", metrics_view, name="prometheus-metrics"),
    path("api/v1/events", EventsApi.as_view(), name="events"),
    path("v1/traces", OtlpTracesApi.as_view(), name="otlp-traces"),
    path("api/v1/integrations/litellm", LiteLLMApi.as_view(), name="litellm"),
    path("api/v1/budgets", BudgetsApi.as_view(), name="budgets"),
    path("api/v1/budgets/<int:budget_id>", BudgetDetailApi.as_view(), name="budget"),
    path("api/v1/alerts", AlertsApi.as_view(), name="alerts"),
    path("api/v1/features/<str:key>", FeatureApi.as_view(), name="feature"),
    path("api/v1/guard", guard_view, name="guard"),
    path("api/v1/usage", UsageApi.as_view(), name="usage"),
    path("api/v1/metrics", MetricsApi.as_view(), name="metrics"),
    path("api/v1/projection", ProjectionApi.as_view(), name="projection"),
    path("api/v1/exports/focus", FocusExportApi.as_view(), name="focus-export"),
    path("api/v1/reconciliation", ReconciliationApi.as_view(), name="reconciliation"),
    path("api/v1/statements", StatementsApi.as_view(), name="statements"),
    path("api/v1/statements/<int:statement_id>", StatementDetailApi.as_view(), name="statement"),
    path(
        "api/v1/statements/<int:statement_id>/pdf", StatementPdfApi.as_view(), name="statement-pdf"
    ),
    path(
        "api/v1/statements/<int:statement_id>/csv", StatementCsvApi.as_view(), name="statement-csv"
    ),
    # Management API: operator keys with the `manage` scope (docs/api.md).
    path("api/v1/tenants", finops_manage.TenantsApi.as_view(), name="manage-tenants"),
    path(
        "api/v1/tenants/<slug:slug>", finops_manage.TenantDetailApi.as_view(), name="manage-tenant"
    ),
    path("api/v1/api-keys", finops_manage.ApiKeysApi.as_view(), name="manage-api-keys"),
    path(
        "api/v1/api-keys/<int:key_id>",
        finops_manage.ApiKeyDetailApi.as_view(),
        name="manage-api-key",
    ),
    path(
        "api/v1/api-keys/<int:key_id>/revoke",
        finops_manage.ApiKeyRevokeApi.as_view(),
        name="manage-api-key-revoke",
    ),
    path("api/v1/prices", finops_manage.PricesApi.as_view(), name="manage-prices"),
    path(
        "api/v1/prices/history",
        finops_manage.PriceHistoryApi.as_view(),
        name="manage-price-history",
    ),
    path(
        "api/v1/prices/import", finops_manage.PriceImportApi.as_view(), name="manage-price-import"
    ),
    path(
        "api/v1/prices/<int:price_id>", finops_manage.PriceDetailApi.as_view(), name="manage-price"
    ),
    path(
        "api/v1/vendor-bills",
        statements_manage.VendorBillsApi.as_view(),
        name="manage-vendor-bills",
    ),
    path(
        "api/v1/vendor-bills/<int:bill_id>",
        statements_manage.VendorBillDetailApi.as_view(),
        name="manage-vendor-bill",
    ),
    path("api/v1/features", ingestion_manage.FeaturesApi.as_view(), name="manage-features"),
    path(
        "api/v1/retirement-reviews",
        console_manage.RetirementReviewsApi.as_view(),
        name="manage-retirement-reviews",
    ),
    path(
        "api/v1/retirement-reviews/<int:review_id>",
        console_manage.RetirementReviewDetailApi.as_view(),
        name="manage-retirement-review",
    ),
    path(
        "api/v1/retirement-reviews/<int:review_id>/decision",
        console_manage.RetirementReviewDecisionApi.as_view(),
        name="manage-retirement-review-decision",
    ),
    # End of the management API.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
