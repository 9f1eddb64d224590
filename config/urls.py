from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing.apis import AlertsApi, BudgetDetailApi, BudgetsApi, FeatureApi, GuardApi
from console.apis import MetricsApi, ProjectionApi
from console.views import dashboard_view
from finops.apis import HealthApi
from ingestion.apis import EventsApi, LiteLLMApi, OtlpTracesApi
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
    path("api/v1/events", EventsApi.as_view(), name="events"),
    path("v1/traces", OtlpTracesApi.as_view(), name="otlp-traces"),
    path("api/v1/integrations/litellm", LiteLLMApi.as_view(), name="litellm"),
    path("api/v1/budgets", BudgetsApi.as_view(), name="budgets"),
    path("api/v1/budgets/<int:budget_id>", BudgetDetailApi.as_view(), name="budget"),
    path("api/v1/alerts", AlertsApi.as_view(), name="alerts"),
    path("api/v1/features/<str:key>", FeatureApi.as_view(), name="feature"),
    path("api/v1/guard", GuardApi.as_view(), name="guard"),
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
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
