"""OpenTelemetry GenAI spans (OTLP/HTTP) as usage events.

Each span with token usage becomes one event, posted through `events_ingest` like any
other: validated, priced, stored once per (tenant, `event_id`). `event_id` is the trace
id and span id, so an exporter's retry of the same batch stores nothing twice.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from finops.models import Tenant
from ingestion.models import Feature

from .intake import SERVICE_TIERS, describe, token_count
from .services import ACCEPTED, DUPLICATE, ItemResult, events_ingest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# The seeds' own decorator: spans named `llm_call` with flat attributes.
DECORATOR_SPAN = "llm_call"

_encoder = msgspec.json.Encoder(decimal_format="string")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OtlpError(Exception):
    """The body cannot be read as an OTLP export request (answered 400)."""


class TooLarge(Exception):
    pass


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpError(f"Body is not valid gzip: {exc}") from None
    if len(out) > limit:
        raise TooLarge
    return out


def decode_request(
    body: bytes, *, content_type: str, content_encoding: str, limit: int
) -> ExportTraceServiceRequest:
    if content_encoding.strip().lower() == "gzip":
        body = _gunzip(body, limit)
    request = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpError(f"Body is not an OTLP protobuf export request: {exc}") from None
        return request
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpError(f"Malformed JSON: {exc}") from None
    except RecursionError:
        raise OtlpError("Malformed JSON: nested too deeply.") from None
    try:
        _hex_ids_to_base64(document)
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise OtlpError(f"Body is not an OTLP/JSON export request: {exc}") from None
    except RecursionError:
        raise OtlpError("Body is not an OTLP/JSON export request: nested too deeply.") from None
    return request


def _hex_ids_to_base64(document: Any) -> None:
    """OTLP/JSON writes trace and span ids in hex, protobuf's JSON mapping in base64."""
    if not isinstance(document, dict):
        raise ValueError("the top level must be an object")
    for resource_spans in document.get("resourceSpans", []) or []:
        for scope_spans in resource_spans.get("scopeSpans", []) or []:
            for span in scope_spans.get("spans", []) or []:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if span.get(name):
                        span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
                for link in span.get("links", []) or []:
                    for name in ("traceId", "spanId"):
                        if link.get(name):
                            link[name] = base64.b64encode(bytes.fromhex(link[name])).decode()


def encode_response(response: ExportTraceServiceResponse, *, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()


class Unreadable:
    """An attribute value of a kind no mapping reads (array, map, bytes)."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind or "empty"

    def __repr__(self) -> str:
        return f"an {self.kind}" if self.kind[0] in "aeiou" else f"a {self.kind}"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return Unreadable(kind)


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class SpanRejected(Exception):
    """A span whose attributes cannot be billed as they are (counted as rejected)."""


def _tokens(attrs: dict[str, Any], *names: str) -> int | None:
    """The first of `names` present, as a token count. Present but not a count (a
    string, a boolean, a fraction, NaN, negative) rejects the span: billed as zero it
    would go unnoticed. An integral double (1200.0) is read as 1200."""
    for name in names:
        if name not in attrs:
            continue
        count = token_count(attrs[name])
        if count is None:
            raise SpanRejected(
                f"attribute {name} must be a non-negative integer token count, "
                f"not {describe(attrs[name])}"
            )
        return count
    return None


def _text(attrs: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = attrs.get(name)
        if isinstance(value, str) and value:
            return value
    return None


# Token attributes, each under its current OTel GenAI name first, then the deprecated
# ones and the names OpenLLMetry writes.
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING_TOKENS = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
# The tier that served the call, else the one asked for; OpenAI's "default", "auto" and
# "scale" are billed at the standard rates.
SERVICE_TIER = (
    "gen_ai.openai.response.service_tier",
    "openai.response.service_tier",
    "gen_ai.openai.request.service_tier",
    "openai.request.service_tier",
)


def _service_tier(attrs: dict[str, Any]) -> str | None:
    for name in SERVICE_TIER:
        if name not in attrs:
            continue
        value = attrs[name]
        tier = SERVICE_TIERS.get(value) if isinstance(value, str) else None
        if tier is None:
            raise SpanRejected(
                f"attribute {name} must be one of {', '.join(SERVICE_TIERS)}, not {describe(value)}"
            )
        return tier
    return None


@dataclass(slots=True)
class SpanResult:
    spans: int = 0
    skipped: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def span_event(
    span: Any, attrs: dict[str, Any], feature_models: dict[str, str]
) -> dict[str, Any] | None:
    """The event a span stands for, or None when it carries no token usage. Raises
    `SpanRejected` when its attributes cannot be billed as they are."""
    decorator = span.name == DECORATOR_SPAN and not any(n in attrs for n in INPUT_TOKENS)
    if decorator:
        input_tokens = _tokens(attrs, "input_tokens")
        output_tokens = _tokens(attrs, "output_tokens")
    else:
        input_tokens = _tokens(attrs, *INPUT_TOKENS)
        output_tokens = _tokens(attrs, *OUTPUT_TOKENS)
    if input_tokens is None and output_tokens is None:
        return None
    feature = _text(attrs, "finops.feature", "feature")
    model = _text(attrs, "gen_ai.response.model", "gen_ai.request.model")
    if model is None and feature is not None:
        model = feature_models.get(feature)  # the decorator names no model
    # fixed64 nanoseconds reach only the year 2554: no overflow; the ingest judges it.
    end = span.end_time_unix_nano or span.start_time_unix_nano
    event: dict[str, Any] = {
        "event_id": f"{span.trace_id.hex()}{span.span_id.hex()}",
        "timestamp": (EPOCH + timedelta(microseconds=end // 1000)).isoformat(),
        "model": model or "",
        "input_tokens": input_tokens or 0,
        "output_tokens": output_tokens or 0,
        "cached_input_tokens": _tokens(attrs, *CACHE_READ_TOKENS) or 0,
        "cache_write_tokens": _tokens(attrs, *CACHE_WRITE_TOKENS) or 0,
        "reasoning_tokens": _tokens(attrs, *REASONING_TOKENS) or 0,
    }
    optional = {
        "tenant": _text(attrs, "finops.tenant"),
        "feature": feature,
        "prompt_template": _text(attrs, "finops.prompt_template"),
        "reservation_id": _text(attrs, "finops.reservation_id"),
        # OTel's provider names (`gcp.gemini`, `aws.bedrock`) pass through; the price
        # lookup knows them.
        "provider": _text(attrs, "gen_ai.provider.name", "gen_ai.system"),
        "user": _text(attrs, "user.id", "enduser.id"),
        "session": _text(attrs, "session.id"),
        "routing_tier": _text(attrs, "model_tier") if decorator else None,
        "service_tier": _service_tier(attrs),
    }
    event.update({k: v for k, v in optional.items() if v is not None})
    if span.start_time_unix_nano and span.end_time_unix_nano >= span.start_time_unix_nano:
        elapsed = (span.end_time_unix_nano - span.start_time_unix_nano) // 1_000_000
        event["latency_ms"] = min(elapsed, 2**31 - 1)
    estimate = attrs.get("estimated_cost_usd") if decorator else None
    if isinstance(estimate, (int, float, str)) and not isinstance(estimate, bool):
        try:
            cost = Decimal(str(estimate)).quantize(Decimal("1e-18"))
        except InvalidOperation:
            cost = None
        if cost is not None and cost.is_finite():
            event["cost_usd"] = cost
    return event


def spans_ingest(
    *,
    key_tenant: Tenant | None,
    request: ExportTraceServiceRequest,
    api_key_id: int | None = None,
) -> SpanResult:
    result = SpanResult()
    feature_models = dict(
        Feature.objects.exclude(default_model="").values_list("key", "default_model")
    )
    items: list[bytes] = []
    for span, attrs in _spans(request):
        result.spans += 1
        try:
            event = span_event(span, attrs, feature_models)
        except SpanRejected as exc:
            result.rejected += 1
            _error(result, f"span {span.trace_id.hex()}{span.span_id.hex()}: {exc}")
            continue
        if event is None:
            result.skipped += 1
        else:
            items.append(_encoder.encode(event))
    if items:
        results = events_ingest(key_tenant=key_tenant, items=items, api_key_id=api_key_id)
        _events_count(results, result)
    return result


def _spans(request: ExportTraceServiceRequest) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each span with its attributes over its resource's."""
    for resource_spans in request.resource_spans:
        defaults = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield span, {**defaults, **_attributes(span.attributes)}


def _error(result: SpanResult, message: str) -> None:
    if len(result.errors) < 5:
        result.errors.append(message)


def _events_count(items: list[ItemResult], result: SpanResult) -> None:
    for item in items:
        if item.status == ACCEPTED:
            result.accepted += 1
        elif item.status == DUPLICATE:
            result.duplicates += 1
        else:
            result.rejected += 1
            fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in item.errors.items())
            _error(result, f"span {item.event_id}: {fields}")
