from __future__ import annotations

from django.urls import path

from . import operator_apis as manage
from .apis import HealthApi

urlpatterns = [
    path("api/v1/health", HealthApi.as_view(), name="health"),
    # Management API: operator keys with the `manage` scope (docs/api.md).
    path("api/v1/tenants", manage.TenantsApi.as_view(), name="manage-tenants"),
    path("api/v1/tenants/<slug:slug>", manage.TenantDetailApi.as_view(), name="manage-tenant"),
    path("api/v1/api-keys", manage.ApiKeysApi.as_view(), name="manage-api-keys"),
    path("api/v1/api-keys/<int:key_id>", manage.ApiKeyDetailApi.as_view(), name="manage-api-key"),
    path(
        "api/v1/api-keys/<int:key_id>/revoke",
        manage.ApiKeyRevokeApi.as_view(),
        name="manage-api-key-revoke",
    ),
    path("api/v1/prices", manage.PricesApi.as_view(), name="manage-prices"),
    path("api/v1/prices/history", manage.PriceHistoryApi.as_view(), name="manage-price-history"),
    path("api/v1/prices/import", manage.PriceImportApi.as_view(), name="manage-price-import"),
    path("api/v1/prices/<int:price_id>", manage.PriceDetailApi.as_view(), name="manage-price"),
    path("api/v1/tier-plans", manage.TierPlansApi.as_view(), name="manage-tier-plans"),
    path(
        "api/v1/tier-plans/<slug:tier>", manage.TierPlanDetailApi.as_view(), name="manage-tier-plan"
    ),  # fmt: skip
]
