"""The OTLP span and LiteLLM payload mappings on their own (no database): which
attributes and fields become which event fields, and which values reject the item."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ingestion import litellm, otlp

END = 1_795_000_001_250_000_000


def span(name: str = "chat gpt-4o") -> Span:
    return Span(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        name=name,
        start_time_unix_nano=END - 1_250_000_000,
        end_time_unix_nano=END,
    )


def test_deprecated_genai_names_are_billed_like_the_current_ones() -> None:
    deprecated = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 1200,
        "gen_ai.usage.completion_tokens": 300,
        "gen_ai.usage.cache_read_input_tokens": 200,
        "gen_ai.openai.request.service_tier": "auto",
    }
    event = otlp.span_event(span(), deprecated, {})
    assert event is not None
    assert {k: event[k] for k in ("model", "provider", "input_tokens", "output_tokens",
                                  "cached_input_tokens", "service_tier")} == {
        "model": "gpt-4o-2024-08-06", "provider": "openai", "input_tokens": 1200,
        "output_tokens": 300, "cached_input_tokens": 200, "service_tier": "standard",
    }  # fmt: skip
    assert event["latency_ms"] == 1250


def test_current_names_win_and_cache_writes_reasoning_and_tier_are_read() -> None:
    attrs = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "old",
        "gen_ai.response.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 13050,
        "gen_ai.usage.prompt_tokens": 1,
        "gen_ai.usage.output_tokens": 400,
        "gen_ai.usage.cache_read.input_tokens": 10000,
        "gen_ai.usage.cache_creation.input_tokens": 3000,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "gen_ai.openai.response.service_tier": "priority",
        "gen_ai.openai.request.service_tier": "default",
    }
    event = otlp.span_event(span(), attrs, {})
    assert event is not None
    assert (event["provider"], event["input_tokens"], event["cache_write_tokens"]) == (
        "anthropic", 13050, 3000)  # fmt: skip
    assert (event["reasoning_tokens"], event["service_tier"]) == (100, "priority")


def test_an_integral_double_is_a_count() -> None:
    event = otlp.span_event(span(), {"gen_ai.usage.input_tokens": 1200.0,
                                     "gen_ai.usage.output_tokens": 3}, {})  # fmt: skip
    assert event is not None and event["input_tokens"] == 1200


@pytest.mark.parametrize(
    "value", [1.5, -1, math.nan, math.inf, True, "1200", otlp.Unreadable("array_value")]
)
@pytest.mark.parametrize("name", ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                                  "gen_ai.usage.cache_read.input_tokens"])  # fmt: skip
def test_a_token_attribute_that_is_not_a_count_rejects_the_span(name: str, value: Any) -> None:
    attrs = {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3, name: value}
    if name == "gen_ai.usage.prompt_tokens":
        del attrs["gen_ai.usage.input_tokens"]
    with pytest.raises(otlp.SpanRejected, match=name.replace(".", r"\.")):
        otlp.span_event(span(), attrs, {})


def test_an_unknown_service_tier_rejects_the_span() -> None:
    usage = {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3}
    with pytest.raises(otlp.SpanRejected, match="service_tier"):
        otlp.span_event(span(), {**usage, "openai.response.service_tier": "gold"}, {})


def test_the_latest_end_time_a_span_can_carry_is_still_a_timestamp() -> None:
    far = span()
    far.end_time_unix_nano = 2**64 - 1  # the ingest rejects it as in the future
    event = otlp.span_event(far, {"gen_ai.usage.input_tokens": 10}, {})
    assert event is not None and event["timestamp"].startswith("2554-")


# --- LiteLLM --------------------------------------------------------------------------


def payload(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "chatcmpl-1", "status": "success", "call_type": "acompletion",
        "model": "gpt-4o", "custom_llm_provider": "openai",
        "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
        "startTime": 1795000000.0, "endTime": 1795000001.25,
        "request_tags": ["tenant:acme"], "metadata": {},
        "response": {"model": "gpt-4o-2024-08-06", "object": "chat.completion",
                     "usage": {"prompt_tokens": 1200, "completion_tokens": 300,
                               "total_tokens": 1500}},
    }  # fmt: skip
    base.update(fields)
    return base


def test_anthropic_cache_writes_and_their_1h_part_as_litellm_logs_them() -> None:
    usage = {
        "prompt_tokens": 13050, "completion_tokens": 400, "total_tokens": 13450,
        "prompt_tokens_details": {
            "cached_tokens": 10000, "cache_creation_tokens": 3000, "cache_write_tokens": 3000,
            "text_tokens": 50,
            "cache_creation_token_details": {"ephemeral_5m_input_tokens": 1000,
                                             "ephemeral_1h_input_tokens": 2000},
        },
        "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 10000,
        "service_tier": "priority",
    }  # fmt: skip
    event = litellm.payload_event(payload(
        prompt_tokens=13050, completion_tokens=400, custom_llm_provider="anthropic",
        response={"model": "claude-sonnet-4-5", "usage": usage}))  # fmt: skip
    assert event is not None
    assert {k: event[k] for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens",
                                  "cache_write_1h_tokens", "service_tier")} == {
        "input_tokens": 13050, "cached_input_tokens": 10000, "cache_write_tokens": 3000,
        "cache_write_1h_tokens": 2000, "service_tier": "priority",
    }  # fmt: skip


def test_the_anthropic_usage_shape_alone_is_read_too() -> None:
    usage = {"prompt_tokens": 13050, "completion_tokens": 400,
             "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 10000,
             "cache_creation": {"ephemeral_1h_input_tokens": 2000}}  # fmt: skip
    event = litellm.payload_event(payload(prompt_tokens=13050, completion_tokens=400,
                                          response={"usage": usage}))  # fmt: skip
    assert event is not None
    assert (event["cached_input_tokens"], event["cache_write_tokens"]) == (10000, 3000)
    assert event["cache_write_1h_tokens"] == 2000


def test_the_tier_litellm_priced_on_and_a_retrieved_batch() -> None:
    event = litellm.payload_event(payload(cost_breakdown={"service_tier": "flex"}))
    assert event is not None and event["service_tier"] == "flex"
    event = litellm.payload_event(payload(response={**payload()["response"],
                                                    "service_tier": "default"}))  # fmt: skip
    assert event is not None and event["service_tier"] == "standard"
    usage = {"prompt_tokens": 1200, "completion_tokens": 300}
    batch = payload(call_type="aretrieve_batch", model="",
                    hidden_params={"batch_models": ["gpt-4o-2024-08-06"]},
                    response={"id": "batch_abc", "object": "batch", "usage": usage})  # fmt: skip
    event = litellm.payload_event(batch)
    assert event is not None
    assert (event["model"], event["service_tier"]) == ("gpt-4o-2024-08-06", "batch")


def test_xai_reasoning_not_yet_folded_is_added_to_output() -> None:
    usage = {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
             "completion_tokens_details": {"reasoning_tokens": 94}}  # fmt: skip
    event = litellm.payload_event(payload(
        custom_llm_provider="xai", prompt_tokens=32, completion_tokens=9, total_tokens=135,
        response={"model": "grok-3-mini", "usage": usage}))  # fmt: skip
    assert event is not None and (event["output_tokens"], event["reasoning_tokens"]) == (103, 94)


@pytest.mark.parametrize(
    "value",
    [Decimal("1.5"), -1, Decimal("NaN"), Decimal("Infinity"), True, "1200", [1],
     Decimal("1e1000000")],  # the last would take int() minutes to build
)  # fmt: skip
@pytest.mark.parametrize(
    "where", ["prompt_tokens", "response.usage.prompt_tokens_details.cached_tokens"]
)
def test_a_count_that_is_not_a_count_rejects_the_payload(where: str, value: Any) -> None:
    body = payload(response={"usage": {"prompt_tokens_details": {}}})
    if where == "prompt_tokens":
        body["prompt_tokens"] = value
    else:
        body["response"]["usage"]["prompt_tokens_details"]["cached_tokens"] = value
    with pytest.raises(litellm.PayloadRejected) as rejected:
        litellm.payload_event(body)
    assert list(rejected.value.errors) == [where]


def test_bad_tags_and_times_reject_the_payload_with_field_errors() -> None:
    with pytest.raises(litellm.PayloadRejected) as rejected:
        litellm.payload_event(payload(request_tags="tenant:acme", endTime=Decimal("NaN")))
    assert set(rejected.value.errors) == {"request_tags", "endTime"}
    with pytest.raises(litellm.PayloadRejected) as rejected:
        litellm.payload_event(payload(endTime=1e20))
    assert set(rejected.value.errors) == {"endTime"}
    # Just below the year 10000, where a float rounds up past the last datetime.
    with pytest.raises(litellm.PayloadRejected) as rejected:
        litellm.payload_event(payload(endTime=Decimal("253402300799.9999999")))
    assert set(rejected.value.errors) == {"endTime"}
    event = litellm.payload_event(payload(endTime=Decimal("253402214399.999999")))
    assert event["timestamp"] == "9999-12-30T23:59:59.999999+00:00"


def test_an_integral_number_is_a_count_and_a_nan_estimate_is_dropped() -> None:
    event = litellm.payload_event(
        payload(prompt_tokens=Decimal("1200.0"), response_cost=Decimal("NaN"))
    )
    assert event is not None and event["input_tokens"] == 1200 and "cost_usd" not in event


def test_a_body_nested_too_deeply_loses_only_that_item() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = f'[{{"id": "a, [\\"x"}}, {deep}, {{"id": "b"}}]'.encode()
    items = litellm.split_payloads(body)
    assert items[0] == {"id": 'a, ["x'} and items[2] == {"id": "b"}
    assert "nested too deeply" in items[1].reason
    with pytest.raises(litellm.LiteLLMError):
        litellm.split_payloads(b"[" * 100_000)
