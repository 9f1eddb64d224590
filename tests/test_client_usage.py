"""`usage_from_response`: each vendor's own response shape, as its API returns it, to the
event's token vector (input holds all input, output all output; the rest are subsets)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from finops_client import usage_from_response


def as_object(document: Any) -> Any:
    """The same response as an SDK object (attributes, not keys)."""
    return json.loads(json.dumps(document), object_hook=lambda d: SimpleNamespace(**d))


# https://platform.openai.com/docs/api-reference/chat/object
OPENAI_CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "A summary.", "refusal": None}}],
    "usage": {
        "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}  # fmt: skip

# https://platform.openai.com/docs/api-reference/responses/object
OPENAI_RESPONSES = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "o3-2025-04-16",
    "output": [{"type": "message", "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e6",
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "A summary.", "annotations": []}]}],
    "service_tier": "flex",
    "usage": {
        "input_tokens": 1200, "input_tokens_details": {"cached_tokens": 200},
        "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 640},
        "total_tokens": 2100,
    },
}  # fmt: skip

# https://docs.claude.com/en/api/messages and .../build-with-claude/prompt-caching
ANTHROPIC_MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "A summary."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 10000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 400,
        "service_tier": "standard",
    },
}

# One line of a Message Batch's results (https://docs.claude.com/en/api/retrieving-message-batch-results)
ANTHROPIC_BATCH_RESULT = {
    "custom_id": "my-second-request",
    "result": {
        "type": "succeeded",
        "message": {
            "id": "msg_014VwiXbi91y3JMjcpyGBHX5",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Hello again!"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 11, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 36,
                      "service_tier": "batch"},
        },
    },
}  # fmt: skip

# https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse (REST, camelCase)
GEMINI_REST = {
    "candidates": [{"content": {"parts": [{"text": "A summary."}], "role": "model"},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {
        "promptTokenCount": 5000, "candidatesTokenCount": 300, "totalTokenCount": 6500,
        "cachedContentTokenCount": 4000, "thoughtsTokenCount": 1200,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 4000}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mAitaLmkHPPlz7IPvtfUqQ4",
}  # fmt: skip

# google-genai's GenerateContentResponse (Python SDK, snake_case attributes)
GEMINI_SDK = {
    "candidates": [],
    "usage_metadata": {
        "prompt_token_count": 5000, "candidates_token_count": 300, "total_token_count": 6500,
        "cached_content_token_count": 4000, "thoughts_token_count": 1200,
        "traffic_type": "ON_DEMAND",
    },
    "model_version": "gemini-2.5-flash",
}  # fmt: skip

# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
BEDROCK_CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "A summary."}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 120, "outputTokens": 300, "totalTokens": 3420,
        "cacheReadInputTokens": 2000, "cacheWriteInputTokens": 1000,
        "cacheDetails": [{"inputTokens": 1000, "ttl": "1h"}],
    },
    "metrics": {"latencyMs": 1234},
    "serviceTier": {"type": "priority"},
}  # fmt: skip

# https://docs.x.ai/docs/guides/reasoning: reasoning_tokens are outside completion_tokens
XAI_CHAT = {
    "id": "3f4a5b6c-0d1e-4f2a-9b8c-7d6e5f4a3b2c",
    "object": "chat.completion",
    "created": 1743770302,
    "model": "grok-3-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "1 + 1 = 2",
                             "reasoning_content": "Let me add..."}}],
    "usage": {
        "prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
        "prompt_tokens_details": {"text_tokens": 32, "audio_tokens": 0, "image_tokens": 0,
                                  "cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 94, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
        "num_sources_used": 0,
    },
    "system_fingerprint": "fp_6ca29cf396",
}  # fmt: skip

# https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post
MISTRAL_CHAT = {
    "id": "cmpl-e5cc70bb28c444948073e77776eb30ef",
    "object": "chat.completion",
    "model": "mistral-small-latest",
    "created": 1702256327,
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "A summary.", "tool_calls": None}}],
    "usage": {"prompt_tokens": 16, "completion_tokens": 34, "total_tokens": 50},
}  # fmt: skip


@pytest.fixture(params=["dict", "object"])
def shape(request: pytest.FixtureRequest):
    return (lambda d: d) if request.param == "dict" else as_object


def test_openai_chat_completions_include_cached_input_and_map_the_default_tier(shape) -> None:
    assert usage_from_response(shape(OPENAI_CHAT)) == {
        "model": "gpt-4o-2024-08-06", "input_tokens": 1200, "output_tokens": 300,
        "cached_input_tokens": 200, "service_tier": "standard",
    }  # fmt: skip


def test_openai_chat_reads_cache_writes_reasoning_and_the_priority_tier() -> None:
    response = json.loads(json.dumps(OPENAI_CHAT))
    response["model"], response["service_tier"] = "o3-2025-04-16", "priority"
    response["usage"]["prompt_tokens_details"]["cache_write_tokens"] = 500
    response["usage"]["completion_tokens_details"]["reasoning_tokens"] = 250
    fields = usage_from_response(response)
    assert fields is not None
    assert (fields["cache_write_tokens"], fields["reasoning_tokens"]) == (500, 250)
    assert fields["service_tier"] == "priority"


@pytest.mark.parametrize(("tier", "expected"), [("scale", "standard"), ("auto", "standard"),
                                                ("flex", "flex"), (None, None)])  # fmt: skip
def test_openai_service_tiers(tier: str | None, expected: str | None) -> None:
    fields = usage_from_response({**OPENAI_CHAT, "service_tier": tier})
    assert fields is not None and fields.get("service_tier") == expected


def test_the_responses_api_is_not_read_as_anthropic(shape) -> None:
    # input_tokens already hold the cached ones; reasoning is part of output.
    assert usage_from_response(shape(OPENAI_RESPONSES)) == {
        "model": "o3-2025-04-16", "input_tokens": 1200, "output_tokens": 900,
        "cached_input_tokens": 200, "reasoning_tokens": 640, "service_tier": "flex",
    }  # fmt: skip


def test_anthropic_input_gets_cache_reads_and_writes_added_and_the_1h_split(shape) -> None:
    assert usage_from_response(shape(ANTHROPIC_MESSAGE)) == {
        "model": "claude-sonnet-4-5-20250929", "provider": "anthropic",
        "input_tokens": 13050, "output_tokens": 400, "cached_input_tokens": 10000,
        "cache_write_tokens": 3000, "cache_write_1h_tokens": 2000, "service_tier": "standard",
    }  # fmt: skip


def test_an_anthropic_body_from_bedrock_is_not_called_anthropic() -> None:
    fields = usage_from_response({**ANTHROPIC_MESSAGE, "id": "msg_bdrk_01Y4Zq8hCx3p"})
    assert fields is not None and fields["provider"] == "bedrock"


def test_a_message_batch_result_is_batch_tier(shape) -> None:
    assert usage_from_response(shape(ANTHROPIC_BATCH_RESULT)) == {
        "model": "claude-sonnet-4-5-20250929", "provider": "anthropic", "input_tokens": 11,
        "output_tokens": 36, "service_tier": "batch",
    }  # fmt: skip
    errored = {"custom_id": "x", "result": {"type": "errored", "error": {"type": "error"}}}
    assert usage_from_response(errored) is None


@pytest.mark.parametrize("response", [GEMINI_REST, GEMINI_SDK], ids=["rest", "sdk"])
def test_gemini_thinking_is_billed_as_output(response: dict, shape) -> None:
    fields = usage_from_response(shape(response))
    expected = {
        "model": "gemini-2.5-flash", "input_tokens": 5000, "output_tokens": 1500,
        "cached_input_tokens": 4000, "reasoning_tokens": 1200,
    }  # fmt: skip
    if response is GEMINI_SDK:
        expected["service_tier"] = "standard"
    assert fields == expected


def test_gemini_thinking_already_in_the_candidates_is_not_counted_twice() -> None:
    meta = {"promptTokenCount": 100, "candidatesTokenCount": 500, "thoughtsTokenCount": 300,
            "totalTokenCount": 600}  # fmt: skip
    fields = usage_from_response({"usageMetadata": meta, "modelVersion": "gemini-2.5-pro"})
    assert fields is not None and (fields["output_tokens"], fields["reasoning_tokens"]) == (
        500, 300)  # fmt: skip


def test_gemini_tool_use_prompt_tokens_bill_as_input_unless_search_grounded() -> None:
    # Code execution or URL context: their tool-use prompt tokens are input tokens.
    meta = {"promptTokenCount": 1000, "toolUsePromptTokenCount": 250,
            "candidatesTokenCount": 80, "totalTokenCount": 1330}  # fmt: skip
    fields = usage_from_response({"usageMetadata": meta, "modelVersion": "gemini-2.5-pro"})
    assert fields is not None and fields["input_tokens"] == 1250
    # Grounding with Google Search is billed per query; its retrieved tokens are not input.
    searched = {"usageMetadata": meta, "modelVersion": "gemini-2.5-pro", "candidates": [
        {"groundingMetadata": {"webSearchQueries": ["finops"]}}]}  # fmt: skip
    fields = usage_from_response(searched)
    assert fields is not None and fields["input_tokens"] == 1000


def test_bedrock_converse_input_gets_cache_tokens_added(shape) -> None:
    assert usage_from_response(shape(BEDROCK_CONVERSE)) == {
        "provider": "bedrock", "input_tokens": 3120, "output_tokens": 300,
        "cached_input_tokens": 2000, "cache_write_tokens": 1000, "cache_write_1h_tokens": 1000,
        "service_tier": "priority",
    }  # fmt: skip


def test_xai_reasoning_outside_completion_tokens_is_added_to_output(shape) -> None:
    assert usage_from_response(shape(XAI_CHAT)) == {
        "model": "grok-3-mini", "provider": "xai", "input_tokens": 32, "output_tokens": 103,
        "cached_input_tokens": 6, "reasoning_tokens": 94,
    }  # fmt: skip


def test_xai_usage_already_folded_is_left_alone() -> None:
    response = json.loads(json.dumps(XAI_CHAT))
    response["model"] = "my-deployment"  # named by the caller, not grok-*
    response["usage"]["completion_tokens"] = 103  # total = prompt + completion
    fields = usage_from_response(response, provider="xai")
    assert fields is not None and (fields["output_tokens"], fields["reasoning_tokens"]) == (
        103, 94)  # fmt: skip


def test_mistral_is_openai_shaped(shape) -> None:
    assert usage_from_response(shape(MISTRAL_CHAT)) == {
        "model": "mistral-small-latest", "provider": "mistral", "input_tokens": 16,
        "output_tokens": 34,
    }  # fmt: skip


def test_a_response_without_usage_is_none() -> None:
    assert usage_from_response({"id": "x", "choices": []}) is None
    assert usage_from_response("plain text") is None
