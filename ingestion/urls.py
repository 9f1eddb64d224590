from __future__ import annotations

from django.urls import path

from .apis import EventsApi, LiteLLMApi, OtlpTracesApi
from .operator_apis import FeaturesApi

urlpatterns = [
    path("api/v1/events", EventsApi.as_view(), name="events"),
    path("v1/traces", OtlpTracesApi.as_view(), name="otlp-traces"),
    path("api/v1/integrations/litellm", LiteLLMApi.as_view(), name="litellm"),
    path("api/v1/features", FeaturesApi.as_view(), name="manage-features"),
]
