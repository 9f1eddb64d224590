"""The usage each vendor reports, as event fields.

Every vendor counts the same call differently: whether input includes cache reads and
writes, whether output includes reasoning, where the service tier is. Each shape is one
row of `SHAPES` (a test that recognises it, a function that maps it), tried in order;
the first that recognises the response maps it. The event's own contract is the same for
all: `input_tokens` holds all input (cache reads and writes included), `output_tokens`
all output (reasoning included), and the cache and reasoning counts are subsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Fields = dict[str, Any]

# OpenAI's `service_tier` names the tier that served the call; "default", "auto" and
# "scale" are billed at the standard rates.
OPENAI_TIERS = {
    "default": "standard",
    "auto": "standard",
    "scale": "standard",
    "standard": "standard",
    "flex": "flex",
    "priority": "priority",
    "batch": "batch",
}
ANTHROPIC_TIERS = {"standard": "standard", "priority": "priority", "batch": "batch"}
# Vertex AI's usageMetadata.trafficType; ON_DEMAND and PROVISIONED_THROUGHPUT are standard.
GEMINI_TRAFFIC_TIERS = {
    "ON_DEMAND": "standard",
    "ON_DEMAND_PRIORITY": "priority",
    "ON_DEMAND_FLEX": "flex",
    "FLEX": "flex",
}
BEDROCK_TIERS = {"default": "standard", "priority": "priority", "flex": "flex"}
MISTRAL_MODEL_PREFIXES = ("mistral-", "open-mistral", "open-mixtral", "magistral", "codestral",
                          "ministral", "pixtral", "devstral", "voxtral")  # fmt: skip


def get(obj: Any, *names: str) -> Any:
    """The first of `names` that `obj` (an SDK object or a dict) carries, or None."""
    if obj is None:
        return None
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def count(obj: Any, *names: str) -> int:
    value = get(obj, *names)
    return int(value) if value is not None else 0


def _tier(value: Any, table: dict[str, str]) -> str | None:
    value = getattr(value, "value", value)  # SDK enums
    return table.get(value) if isinstance(value, str) else None


def _put(fields: Fields, **optional: Any) -> Fields:
    """Add the optional fields that carry something (a zero count is the default)."""
    fields.update({k: v for k, v in optional.items() if v})
    return fields


# --- OpenAI Chat Completions, and the vendors that copy it (xAI, Mistral) ---------------


def is_openai_chat(response: Any, usage: Any) -> bool:
    return get(usage, "prompt_tokens") is not None


def _is_xai(model: str, provider: str | None) -> bool:
    return provider == "xai" or model.startswith(("grok", "xai/"))


def openai_chat(response: Any, usage: Any, provider: str | None) -> Fields:
    model = str(get(response, "model") or "")
    prompt_details = get(usage, "prompt_tokens_details")
    completion = count(usage, "completion_tokens")
    reasoning = count(get(usage, "completion_tokens_details"), "reasoning_tokens")
    output = completion
    inferred = None
    if _is_xai(model, provider):
        inferred = "xai"
        # xAI counts reasoning apart from completion_tokens (total = prompt + completion +
        # reasoning); a response already folded to OpenAI's rule (by LiteLLM, say) has
        # total = prompt + completion and is left as it is.
        total = get(usage, "total_tokens")
        if reasoning and total != count(usage, "prompt_tokens") + completion:
            output = completion + reasoning
    elif model.startswith(MISTRAL_MODEL_PREFIXES):
        inferred = "mistral"
    fields: Fields = {"input_tokens": count(usage, "prompt_tokens"), "output_tokens": output}
    return _put(
        fields,
        model=model,
        provider=inferred,
        cached_input_tokens=count(prompt_details, "cached_tokens"),
        cache_write_tokens=count(prompt_details, "cache_write_tokens"),
        reasoning_tokens=reasoning,
        service_tier=_tier(get(response, "service_tier"), OPENAI_TIERS),
    )


# --- OpenAI Responses API -------------------------------------------------------------


def is_openai_responses(response: Any, usage: Any) -> bool:
    if get(usage, "input_tokens") is None:
        return False
    if get(usage, "cache_read_input_tokens", "cache_creation_input_tokens") is not None:
        return False  # Anthropic's
    return get(response, "object") == "response" or (
        get(usage, "input_tokens_details", "output_tokens_details") is not None
    )


def openai_responses(response: Any, usage: Any, provider: str | None) -> Fields:
    # Unlike Anthropic's, the Responses API's input_tokens include the cached ones.
    fields: Fields = {
        "input_tokens": count(usage, "input_tokens"),
        "output_tokens": count(usage, "output_tokens"),
    }
    return _put(
        fields,
        model=get(response, "model"),
        cached_input_tokens=count(get(usage, "input_tokens_details"), "cached_tokens"),
        reasoning_tokens=count(get(usage, "output_tokens_details"), "reasoning_tokens"),
        service_tier=_tier(get(response, "service_tier"), OPENAI_TIERS),
    )


# --- Anthropic Messages and Message Batches -------------------------------------------


def is_anthropic_batch_result(response: Any, usage: Any) -> bool:
    return get(response, "custom_id") is not None and get(response, "result") is not None


def anthropic_batch_result(response: Any, usage: Any, provider: str | None) -> Fields | None:
    result = get(response, "result")
    if get(result, "type") != "succeeded":
        return None  # errored, canceled and expired requests are not billed
    message = get(result, "message")
    fields = anthropic_messages(message, get(message, "usage"), provider)
    if fields is None:
        return None
    fields["service_tier"] = "batch"
    fields.setdefault("provider", "anthropic")
    return fields


def is_anthropic(response: Any, usage: Any) -> bool:
    return get(usage, "input_tokens") is not None


def _anthropic_host(message_id: Any, message_type: Any) -> str | None:
    """Anthropic's own message ids start `msg_`; Bedrock's and Vertex AI's, which return
    the same body, `msg_bdrk_` and `msg_vrtx_`."""
    if not isinstance(message_id, str) or message_type != "message":
        return None
    if message_id.startswith("msg_bdrk_"):
        return "bedrock"
    if message_id.startswith("msg_vrtx_"):
        return "vertex_ai"
    return "anthropic" if message_id.startswith("msg_") else None


def anthropic_messages(response: Any, usage: Any, provider: str | None) -> Fields | None:
    if usage is None:
        return None
    # Anthropic counts cache reads and writes apart from input_tokens.
    cache_read = count(usage, "cache_read_input_tokens")
    cache_write = count(usage, "cache_creation_input_tokens")
    fields: Fields = {
        "input_tokens": count(usage, "input_tokens") + cache_read + cache_write,
        "output_tokens": count(usage, "output_tokens"),
    }
    return _put(
        fields,
        model=get(response, "model"),
        provider=_anthropic_host(get(response, "id"), get(response, "type")),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=count(get(usage, "cache_creation"), "ephemeral_1h_input_tokens"),
        service_tier=_tier(get(usage, "service_tier"), ANTHROPIC_TIERS),
    )


# --- Google Gemini (Gemini API and Vertex AI) -----------------------------------------


def _usage_metadata(response: Any) -> Any:
    return get(response, "usage_metadata", "usageMetadata")


def _searched(response: Any) -> bool:
    """Whether a candidate grounded on Google Search (its queries) or Maps."""
    for candidate in get(response, "candidates") or []:
        grounding = get(candidate, "grounding_metadata", "groundingMetadata")
        if get(grounding, "web_search_queries", "webSearchQueries"):
            return True
        chunks = get(grounding, "grounding_chunks", "groundingChunks") or []
        if any(get(chunk, "maps") is not None for chunk in chunks):
            return True
    return False


def is_gemini(response: Any, usage: Any) -> bool:
    return _usage_metadata(response) is not None


def gemini(response: Any, usage: Any, provider: str | None) -> Fields:
    meta = _usage_metadata(response)
    prompt = count(meta, "prompt_token_count", "promptTokenCount")  # cached content included
    candidates = count(meta, "candidates_token_count", "candidatesTokenCount")
    thoughts = count(meta, "thoughts_token_count", "thoughtsTokenCount")
    tool_prompt = count(meta, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
    total = get(meta, "total_token_count", "totalTokenCount")
    # Thinking is billed as output. Gemini reports it apart from the candidates; should a
    # total ever show the candidates holding it already, it is not added twice.
    folded = total is not None and thoughts and int(total) == prompt + candidates + tool_prompt
    # Tool-use prompt tokens (code execution, URL context, file search) bill as input,
    # except those of Google Search or Maps grounding, which Google bills per query.
    billed_tool_prompt = 0 if _searched(response) else tool_prompt
    fields: Fields = {
        "input_tokens": prompt + billed_tool_prompt,
        "output_tokens": candidates if folded else candidates + thoughts,
    }
    return _put(
        fields,
        model=get(response, "model_version", "modelVersion"),
        cached_input_tokens=count(meta, "cached_content_token_count", "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
        service_tier=_tier(get(meta, "traffic_type", "trafficType"), GEMINI_TRAFFIC_TIERS),
    )


# --- Amazon Bedrock Converse ----------------------------------------------------------


def is_bedrock_converse(response: Any, usage: Any) -> bool:
    return get(usage, "inputTokens", "outputTokens") is not None


def bedrock_converse(response: Any, usage: Any, provider: str | None) -> Fields:
    # Converse's inputTokens exclude cache reads and writes (LiteLLM adds them back too).
    cache_read = count(usage, "cacheReadInputTokens")
    cache_write = count(usage, "cacheWriteInputTokens")
    one_hour = sum(
        count(detail, "inputTokens")
        for detail in get(usage, "cacheDetails") or []
        if get(detail, "ttl") == "1h"
    )
    fields: Fields = {
        "input_tokens": count(usage, "inputTokens") + cache_read + cache_write,
        "output_tokens": count(usage, "outputTokens"),
        "provider": "bedrock",
    }
    return _put(
        fields,
        model=get(response, "modelId"),  # Converse answers carry no model; pass model=
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(one_hour, cache_write),
        service_tier=_tier(get(get(response, "serviceTier"), "type"), BEDROCK_TIERS),
    )


Shape = tuple[str, Callable[[Any, Any], bool], Callable[[Any, Any, "str | None"], "Fields | None"]]

# First match wins: the order matters where shapes share a field name (`input_tokens`
# is both the Responses API's and Anthropic's; a batch result wraps a message).
SHAPES: tuple[Shape, ...] = (
    ("anthropic_batch_result", is_anthropic_batch_result, anthropic_batch_result),
    ("gemini", is_gemini, gemini),
    ("bedrock_converse", is_bedrock_converse, bedrock_converse),
    ("openai_responses", is_openai_responses, openai_responses),
    ("anthropic_messages", is_anthropic, anthropic_messages),
    ("openai_chat", is_openai_chat, openai_chat),
)


def usage_from_response(response: Any, *, provider: str | None = None) -> Fields | None:
    """Model, tokens, service tier (and provider, where the shape names it) of a vendor
    response (an SDK object or its dict), as event fields; None when it carries no usage.

    `provider` is what the caller knows (`xai` makes an OpenAI-shaped answer xAI's)."""
    usage = get(response, "usage")
    for _name, recognises, mapping in SHAPES:
        if recognises(response, usage):
            return mapping(response, usage, provider)
    return None
