from __future__ import annotations

from django.urls import path

from . import apis
from .operator_apis import VendorBillDetailApi, VendorBillsApi

urlpatterns = [
    path("api/v1/usage", apis.UsageApi.as_view(), name="usage"),
    path("api/v1/exports/focus", apis.FocusExportApi.as_view(), name="focus-export"),
    path("api/v1/reconciliation", apis.ReconciliationApi.as_view(), name="reconciliation"),
    path("api/v1/statements", apis.StatementsApi.as_view(), name="statements"),
    path(
        "api/v1/statements/<int:statement_id>",
        apis.StatementDetailApi.as_view(),
        name="statement",
    ),
    path(
        "api/v1/statements/<int:statement_id>/pdf",
        apis.StatementPdfApi.as_view(),
        name="statement-pdf",
    ),
    path(
        "api/v1/statements/<int:statement_id>/csv",
        apis.StatementCsvApi.as_view(),
        name="statement-csv",
    ),
    path("api/v1/vendor-bills", VendorBillsApi.as_view(), name="manage-vendor-bills"),
    path(
        "api/v1/vendor-bills/<int:bill_id>",
        VendorBillDetailApi.as_view(),
        name="manage-vendor-bill",
    ),
]
