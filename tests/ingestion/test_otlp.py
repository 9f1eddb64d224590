"""OTLP/HTTP intake, driven by the real OpenTelemetry SDK and its OTLP/HTTP exporter."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from finops.services import apikey_create
from ingestion.models import Feature, UsageEvent
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,  # includes the 200 cached
    "gen_ai.usage.cache_read.input_tokens": 200,
    "gen_ai.usage.output_tokens": 300,
}


def recorded_spans(*spans: dict, resource: dict | None = None) -> list:
    """Spans made by the SDK's own tracer, as an exporter receives them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource or {}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for attributes in spans:
        name = attributes.pop("_name", "chat gpt-4o")
        with tracer.start_as_current_span(name, attributes=attributes):
            time.sleep(0.002)
    provider.shutdown()
    return list(memory.get_finished_spans())


def exporter(live_server, key: str, compression: Compression = Compression.NoCompression):
    return OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {key}"},
        compression=compression,
    )


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sdk_exports_genai_spans_that_become_priced_events(live_server, acme,
                                                               compression) -> None:  # fmt: skip
    _, key = apikey_create(tenant=acme, scopes=["ingest"], name="otel")
    spans = recorded_spans(
        {**GENAI, "finops.feature": "document_summarization", "user.id": "u-1",
         "session.id": "s-1", "finops.prompt_template": "summarize-v3"},
        {"_name": "tool call"},  # no usage: skipped, not an error
    )  # fmt: skip
    out = exporter(live_server, key, compression)
    assert out.export(spans) == SpanExportResult.SUCCESS
    assert out.export(spans) == SpanExportResult.SUCCESS  # the exporter's retry
    event = UsageEvent.objects.get()
    span = spans[0]
    assert event.event_id == f"{span.context.trace_id:032x}{span.context.span_id:016x}"
    assert (event.tenant, event.feature.key, event.prompt_template.key) == (
        acme, "document_summarization", "summarize-v3")  # fmt: skip
    assert (event.model, event.provider, event.user, event.session) == (
        "gpt-4o-2024-08-06", "openai", "u-1", "s-1")  # fmt: skip
    # 1000 uncached at 2.50, 200 cached at 1.25, 300 output at 10 per 1M: nothing twice.
    assert (event.input_tokens, event.cached_input_tokens) == (1200, 200)
    assert event.cost == Decimal("0.00575")
    assert event.latency_ms is not None and event.latency_ms >= 2
    since_epoch = event.timestamp - datetime(1970, 1, 1, tzinfo=UTC)
    assert since_epoch // timedelta(microseconds=1) == span.end_time // 1000


def test_resource_attributes_are_defaults_and_the_decorator_span_is_understood(
    live_server, operator, acme
) -> None:
    Feature.objects.create(key="summarize", default_model="gpt-4o-mini-2024-07-18")
    _, key = apikey_create(tenant=None, scopes=["ingest"], name="otel")
    spans = recorded_spans(
        {"_name": "llm_call", "feature": "summarize", "model_tier": "cheap",
         "input_tokens": 1000, "output_tokens": 100, "estimated_cost_usd": 0.0002},
        resource={"finops.tenant": "acme", "service.name": "app"},
    )  # fmt: skip
    assert exporter(live_server, key).export(spans) == SpanExportResult.SUCCESS
    event = UsageEvent.objects.get()
    assert (event.tenant.slug, event.model, event.routing_tier) == (
        "acme", "gpt-4o-mini-2024-07-18", "cheap")  # fmt: skip
    assert event.cost == Decimal("0.00021")  # 1000 x 0.15 + 100 x 0.60 per 1M
    assert event.client_cost_usd == Decimal("0.0002")


def test_unmappable_spans_are_reported_in_partial_success(live_server, operator, acme) -> None:
    spans = recorded_spans({**GENAI, "finops.tenant": "acme"}, dict(GENAI))  # no tenant
    body = _protobuf(spans)
    response = operator.post("/v1/traces", body, content_type="application/x-protobuf")
    assert response.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "tenant" in answer.partial_success.error_message
    assert UsageEvent.objects.count() == 1


def test_a_tenant_key_cannot_post_spans_for_another_tenant(live_server, acme) -> None:
    TenantFactory(slug="globex")
    _, key = apikey_create(tenant=acme, scopes=["ingest"], name="otel")
    spans = recorded_spans({**GENAI, "finops.tenant": "globex"})
    body = _protobuf(spans)
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = client.post("/v1/traces", body, content_type="application/x-protobuf")
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert not UsageEvent.objects.exists()


def test_otlp_json_with_hex_ids_and_string_int64s(operator, acme) -> None:
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "finops.tenant", "value": {"stringValue": "acme"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "chat", "kind": 3,
            "startTimeUnixNano": str(time.time_ns() - 2_000_000_000),
            "endTimeUnixNano": str(time.time_ns() - 1_000_000_000),
            "attributes": [
                {"key": "gen_ai.response.model", "value": {"stringValue": "gpt-4o-2024-08-06"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": 200}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "300"}},
            ],
        }]}],
    }]}  # fmt: skip
    response = operator.post("/v1/traces", json.dumps(body), content_type="application/json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    event = UsageEvent.objects.get()
    assert event.event_id == "5b8efff798038103d269b633813fc60ceee19b7ec3c1b174"
    assert event.cost == Decimal("0.00575") and event.latency_ms == 1000


def test_bad_bodies_get_the_status_codes_exporters_expect(operator, acme, settings) -> None:
    assert operator.post("/v1/traces", b"\xff\x00garbage",
                         content_type="application/x-protobuf").status_code == 400  # fmt: skip
    assert operator.post("/v1/traces", b"{", content_type="application/json").status_code == 400
    assert operator.post("/v1/traces", b"{}", content_type="text/plain").status_code == 415
    settings.FINOPS_MAX_BODY_BYTES = 10
    assert operator.post("/v1/traces", b"x" * 11,
                         content_type="application/x-protobuf").status_code == 413  # fmt: skip
    unauthenticated = operator.__class__()
    assert (
        unauthenticated.post("/v1/traces", b"", content_type="application/json").status_code == 401
    )


def _protobuf(spans: list) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans).SerializeToString()


def _answer(response) -> ExportTraceServiceResponse:
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    return answer


def test_deprecated_names_cache_writes_reasoning_and_the_service_tier_are_stored(
    operator, acme
) -> None:
    spans = recorded_spans(
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-2024-08-06",
         "gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 300,
         "gen_ai.usage.cache_read_input_tokens": 200,
         "gen_ai.openai.response.service_tier": "default", "finops.tenant": "acme"},
        {"gen_ai.provider.name": "aws.bedrock",
         "gen_ai.response.model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
         "gen_ai.usage.input_tokens": 13050, "gen_ai.usage.output_tokens": 400,
         "gen_ai.usage.cache_read.input_tokens": 10000,
         "gen_ai.usage.cache_creation.input_tokens": 3000,
         "gen_ai.usage.reasoning.output_tokens": 120, "finops.tenant": "acme"},
        {"gen_ai.provider.name": "openai", "gen_ai.response.model": "o3-2025-04-16",
         "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500,
         "openai.response.service_tier": "flex", "finops.tenant": "acme"},
    )  # fmt: skip
    response = operator.post("/v1/traces", _protobuf(spans), content_type="application/x-protobuf")
    assert response.status_code == 200 and _answer(response).partial_success.rejected_spans == 0
    fields = ("provider", "input_tokens", "output_tokens", "cached_input_tokens",
              "cache_write_tokens", "reasoning_tokens", "service_tier")  # fmt: skip
    stored = {e["model"]: tuple(e[f] for f in fields)
              for e in UsageEvent.objects.values("model", *fields)}  # fmt: skip
    assert stored == {
        "gpt-4o-2024-08-06": ("openai", 1200, 300, 200, 0, 0, "standard"),
        "anthropic.claude-sonnet-4-5-20250929-v1:0": ("aws.bedrock", 13050, 400, 10000, 3000,
                                                      120, "standard"),
        "o3-2025-04-16": ("openai", 1000, 500, 0, 0, 0, "flex"),
    }  # fmt: skip
    # The deprecated names are billed: 1000 uncached, 200 cached, 300 output.
    assert UsageEvent.objects.get(model="gpt-4o-2024-08-06").cost == Decimal("0.00575")


@pytest.mark.parametrize(
    ("name", "value"),
    [("gen_ai.usage.input_tokens", "1200"), ("gen_ai.usage.input_tokens", 1.5),
     ("gen_ai.usage.output_tokens", True), ("gen_ai.usage.output_tokens", float("nan")),
     ("gen_ai.usage.prompt_tokens", -5), ("gen_ai.usage.cache_read.input_tokens", float("inf"))],
)  # fmt: skip
def test_a_token_attribute_that_is_not_a_count_rejects_only_its_span(
    operator, acme, name, value
) -> None:
    usage = {"gen_ai.response.model": "gpt-4o-2024-08-06", "finops.tenant": "acme",
             "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300}  # fmt: skip
    bad = {**usage, name: value}
    if name == "gen_ai.usage.prompt_tokens":
        del bad["gen_ai.usage.input_tokens"]
    spans = recorded_spans(bad, {**usage, "gen_ai.usage.input_tokens": 1000.0})
    response = operator.post("/v1/traces", _protobuf(spans), content_type="application/x-protobuf")
    answer = _answer(response)
    assert response.status_code == 200 and answer.partial_success.rejected_spans == 1
    assert name in answer.partial_success.error_message
    event = UsageEvent.objects.get()  # the good neighbour, its integral double read as 1000
    assert event.event_id.endswith(f"{spans[1].context.span_id:016x}")
    assert event.input_tokens == 1000


def test_no_body_gives_a_5xx_and_a_413_names_the_limit(operator, acme, settings) -> None:
    deep = b"[" * 100_000
    response = operator.post("/v1/traces", deep, content_type="application/json")
    assert response.status_code == 400 and b"nested too deeply" in response.content
    nested_attribute = {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [
        {"key": "x", "value": {"kvlistValue": {"values": []}}}]}]}]}]}  # fmt: skip
    value = nested_attribute["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][0]
    for _ in range(150):  # deeper than protobuf's JSON parser goes (100 levels)
        value = value["value"]["kvlistValue"]["values"]
        value.append({"key": "x", "value": {"kvlistValue": {"values": []}}})
        value = value[0]
    response = operator.post("/v1/traces", json.dumps(nested_attribute),
                             content_type="application/json")  # fmt: skip
    assert response.status_code == 400
    bad_time = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "endTimeUnixNano": "yesterday"}]}]}]}  # fmt: skip
    response = operator.post("/v1/traces", json.dumps(bad_time), content_type="application/json")
    assert response.status_code == 400
    far = recorded_spans({**GENAI, "finops.tenant": "acme"})
    body = encode_far_future(far)
    answer = _answer(operator.post("/v1/traces", body, content_type="application/x-protobuf"))
    assert answer.partial_success.rejected_spans == 1
    assert "timestamp" in answer.partial_success.error_message
    settings.FINOPS_MAX_BODY_BYTES = 100
    response = operator.post("/v1/traces", b"x" * 101, content_type="application/x-protobuf")
    assert response.status_code == 413 and b"100 bytes" in response.content
    import gzip

    response = operator.post("/v1/traces", gzip.compress(b"\0" * 1000),
                             content_type="application/x-protobuf",
                             headers={"Content-Encoding": "gzip"})  # fmt: skip
    assert response.status_code == 413 and b"100 bytes once decompressed" in response.content
    assert not UsageEvent.objects.exists()


def encode_far_future(spans: list) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request = encode_spans(spans)
    request.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = 2**64 - 1
    return request.SerializeToString()
