"""Shapes of the events API. Posted events are validated by `ingestion.schema`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from finops.money import decimal_string
from finops.serializers import StrictSerializer

from .models import UsageEvent


class EventQuerySerializer(StrictSerializer):
    tenant = serializers.CharField(required=False, max_length=63)
    feature = serializers.CharField(required=False, max_length=128)
    model = serializers.CharField(required=False, max_length=200)
    event_id = serializers.CharField(required=False, max_length=128)
    to = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    cursor = serializers.CharField(required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # `from` is a Python keyword, so it cannot be declared in the class body.
        fields["from"] = serializers.DateTimeField(required=False)
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("from") and attrs.get("to") and attrs["from"] >= attrs["to"]:
            raise serializers.ValidationError({"to": ["Must be after 'from'."]})
        return attrs


def event_as_posted(event: UsageEvent) -> dict[str, Any]:
    """An event as its client posted it, plus `cost` and `priced`."""
    data: dict[str, Any] = {
        "event_id": event.event_id,
        "tenant": event.tenant.slug,
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "feature": event.feature.key if event.feature_id else None,
        "prompt_template": event.prompt_template.key if event.prompt_template_id else None,
        "model": event.model,
        "provider": event.provider,
        "region": event.region,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cached_input_tokens": event.cached_input_tokens,
        "cache_write_tokens": event.cache_write_tokens,
        "cache_write_1h_tokens": event.cache_write_1h_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "grounding_tokens": event.grounding_tokens,
        "wasted_tokens": event.wasted_tokens,
        "user": event.user,
        "session": event.session,
        "routing_tier": event.routing_tier,
        "latency_ms": event.latency_ms,
        "cache_hit": event.cache_hit,
        "escalated": event.escalated,
        "batch": event.batch,
        "service_tier": event.service_tier,
        "queries": event.queries,
        "retrieval": None
        if event.chunks_retrieved is None
        else {"chunks_retrieved": event.chunks_retrieved, "chunks_used": event.chunks_used},
        "reranker_changed_order": event.reranker_changed_order,
        "outcome": event.outcome,
        "prompt_hash": event.prompt_hash,
        "tags": event.tags,
        "cost_usd": decimal_string(event.client_cost_usd),
        "cost": decimal_string(event.cost),
        "currency": event.currency or None,
        "priced": event.price_id is not None,
    }
    return data
