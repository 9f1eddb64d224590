from __future__ import annotations

from django.urls import path

from .apis import (
    AlertsApi,
    BudgetDetailApi,
    BudgetsApi,
    FeatureApi,
    RateLimitDetailApi,
    RateLimitsApi,
)
from .guard.views import guard_view

urlpatterns = [
    path("api/v1/guard", guard_view, name="guard"),
    path("api/v1/budgets", BudgetsApi.as_view(), name="budgets"),
    path("api/v1/budgets/<int:budget_id>", BudgetDetailApi.as_view(), name="budget"),
    path("api/v1/rate-limits", RateLimitsApi.as_view(), name="rate-limits"),
    path("api/v1/rate-limits/<int:rate_limit_id>", RateLimitDetailApi.as_view(), name="rate-limit"),
    path("api/v1/alerts", AlertsApi.as_view(), name="alerts"),
    path("api/v1/features/<str:key>", FeatureApi.as_view(), name="feature"),
]
