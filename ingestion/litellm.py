"""LiteLLM's `generic_api` logger as usage events.

LiteLLM posts its StandardLoggingPayload objects as a JSON array (`json_array`, the
default), as newline-delimited JSON (`ndjson`) or one per request (`single`). Each
successful call with token usage becomes one event through `events_ingest`.

LiteLLM drops a whole batch on any answer but 2xx, so every problem is judged per
payload: a payload that cannot be read or billed as it is gets a rejection of its own,
and its neighbours are stored.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from django.conf import settings

from .intake import SERVICE_TIERS, describe, token_count
from .services import events_ingest

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_encoder = msgspec.json.Encoder(decimal_format="string")
ESTIMATE_PLACES = Decimal("1e-18")
Errors = dict[str, list[str]]

# The tier LiteLLM priced on (`cost_breakdown.service_tier`) or the vendor's own answer;
# OpenAI's "default", "auto" and "scale" are billed at the standard rates.
# A retrieved batch job: LiteLLM logs the summed usage of all its requests once.
BATCH_CALL_TYPES = {"aretrieve_batch", "retrieve_batch"}


class LiteLLMError(Exception):
    """The body holds no LiteLLM payload at all (answered 400)."""


class _Unreadable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _loads(text: str) -> Any:
    # Python's json takes NaN and Infinity; as Decimals they are refused where a count
    # or a time is read, instead of crashing float arithmetic.
    return json.loads(text, parse_float=Decimal, parse_constant=Decimal)


# A JSON string (skipped whole), a bracket or a comma; a lone quote opens a string that
# never closes.
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]|"')


def _array_items(text: str) -> list[str] | None:
    """The source of each element of a top-level JSON array, found by scanning rather
    than parsing, so that one element nested too deeply to parse is judged alone."""
    if not text.startswith("["):
        return None
    items: list[str] = []
    depth, start = 0, 1
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token == '"':
            return None
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return _array_closed(text, items, start, match.start())
        elif depth == 1:
            items.append(text[start : match.start()].strip())
            start = match.end()
    return None


def _array_closed(text: str, items: list[str], start: int, end: int) -> list[str] | None:
    """The items once the top-level array closes at `end`; None if anything follows."""
    if text[end + 1 :].strip():
        return None
    last = text[start:end].strip()
    return [*items, last] if last or items else items


def _parse_item(source: str, where: str) -> Any:
    try:
        return _loads(source)
    except RecursionError:
        return _Unreadable(f"{where} is nested too deeply")
    except ValueError:
        return _Unreadable(f"{where} is not JSON")


def split_payloads(body: bytes) -> list[Any]:
    """Every payload of a body in any of the three log formats."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        raise LiteLLMError("Empty body.")
    try:
        document = _loads(text)
    except RecursionError:
        items = _array_items(text)
        if items is not None:
            return [_parse_item(s, f"item {i}") for i, s in enumerate(items)]
        document = None
    except ValueError:
        document = None
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        return [document]
    payloads: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            payloads.append(_parse_item(line, f"line {number}"))
    if not payloads or all(isinstance(p, _Unreadable) for p in payloads):
        raise LiteLLMError("The body is neither a JSON array, a JSON object nor NDJSON.")
    return payloads


class PayloadRejected(Exception):
    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


class _Reader:
    """Reads a payload's counts strictly, gathering an error per bad field."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.errors: Errors = {}

    def at(self, path: str) -> Any:
        value: Any = self.payload
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def tokens(self, *paths: str) -> int | None:
        """The first of `paths` that is present (not null), as a count. An integral
        number (1200.0) is 1200; a fraction, a negative, NaN, Infinity, a boolean or a
        string is an error: billed as zero it would go unnoticed."""
        for path in paths:
            value = self.at(path)
            if value is None:
                continue
            count = token_count(value)
            if count is None:
                self.errors[path] = [
                    f"Expected a non-negative integer token count, got {describe(value)}."
                ]
            return count
        return None

    def text(self, *paths: str) -> str | None:
        for path in paths:
            value = self.at(path)
            if isinstance(value, str) and value:
                return value
        return None

    def service_tier(self, *paths: str) -> str | None:
        for path in paths:
            value = self.at(path)
            if value is None:
                continue
            tier = SERVICE_TIERS.get(value) if isinstance(value, str) else None
            if tier is None:
                self.errors[path] = [
                    f"Expected one of {', '.join(SERVICE_TIERS)}, got {describe(value)}."
                ]
            return tier
        return None

    def tags(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for path in ("request_tags", "metadata.tags"):
            tags = self.at(path)
            if tags is None:
                continue
            if not isinstance(tags, list):
                self.errors[path] = [f"Expected a list of strings, got {describe(tags)}."]
                continue
            for tag in tags:
                if isinstance(tag, str) and ":" in tag:
                    name, _, value = tag.partition(":")
                    found.setdefault(name.strip(), value.strip())
        return found

    def epoch(self, path: str) -> Decimal | None:
        value = self.at(path)
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return None
        value = Decimal(str(value))
        # Up to 9999-12-30: a float of a value just below 9999-12-31's end rounds past it.
        if not value.is_finite() or not 0 <= value < 253402214400:
            self.errors[path] = [f"Expected epoch seconds, got {value}."]
            return None
        return value


def payload_event(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The event of one payload, or None when it bills nothing (a failed call, no
    tokens). Raises `PayloadRejected` with field errors when it cannot be billed as it
    is."""
    if payload.get("status") not in (None, "success"):
        return None
    read = _Reader(payload)
    # The usage LiteLLM normalised to OpenAI's shape: prompt_tokens hold all input
    # (Anthropic's and Bedrock's cache reads and writes added in), completion_tokens all
    # output (Gemini's thinking and xAI's reasoning added in).
    usage = (
        "response.usage" if isinstance(read.at("response.usage"), dict) else "metadata.usage_object"
    )
    details = f"{usage}.prompt_tokens_details"
    prompt = read.tokens("prompt_tokens", f"{usage}.prompt_tokens")
    completion = read.tokens("completion_tokens", f"{usage}.completion_tokens")
    cached = read.tokens(f"{details}.cached_tokens", f"{usage}.cache_read_input_tokens")
    cache_write = read.tokens(
        f"{details}.cache_write_tokens",
        f"{details}.cache_creation_tokens",
        f"{usage}.cache_creation_input_tokens",
    )
    cache_write_1h = read.tokens(
        f"{details}.cache_creation_token_details.ephemeral_1h_input_tokens",
        f"{usage}.cache_creation.ephemeral_1h_input_tokens",
    )
    reasoning = read.tokens(f"{usage}.completion_tokens_details.reasoning_tokens")
    total = read.tokens("total_tokens", f"{usage}.total_tokens")
    tier = read.service_tier(
        "cost_breakdown.service_tier", "response.service_tier", f"{usage}.service_tier"
    )
    tags = read.tags()
    end = read.epoch("endTime")
    start = read.epoch("startTime")
    if read.errors:
        raise PayloadRejected(read.errors)
    if not prompt and not completion:
        return None
    provider = read.text("custom_llm_provider")
    output = completion or 0
    if provider == "xai" and reasoning and total == (prompt or 0) + output + reasoning:
        output += reasoning  # not yet folded in the way LiteLLM's xAI handler does it
    if read.at("call_type") in BATCH_CALL_TYPES or read.at("response.object") == "batch":
        tier = "batch"
    batch_models = read.at("hidden_params.batch_models")
    only_batch_model = (
        batch_models[0] if isinstance(batch_models, list) and len(batch_models) == 1 else None
    )
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    tenant = tags.get("tenant") or metadata.get(settings.FINOPS_LITELLM_TENANT_FIELD)
    event: dict[str, Any] = {
        "event_id": str(payload.get("id") or payload.get("litellm_call_id") or ""),
        "timestamp": (
            (EPOCH + timedelta(microseconds=int(end * 1_000_000))).isoformat()
            if end is not None
            else payload.get("endTime")
        ),
        "model": read.text("response.model") or only_batch_model or payload.get("model"),
        "input_tokens": prompt or 0,
        "output_tokens": output,
        "cached_input_tokens": cached or 0,
        "cache_write_tokens": cache_write or 0,
        "reasoning_tokens": reasoning or 0,
    }
    optional = {
        "tenant": tenant if isinstance(tenant, str) and tenant else None,
        "feature": tags.get("feature"),
        "prompt_template": tags.get("prompt"),
        "reservation_id": tags.get("reservation"),
        "provider": provider,
        "user": payload.get("end_user") or None,
        "cache_write_1h_tokens": cache_write_1h or None,
        "service_tier": tier,
    }
    event.update({k: v for k, v in optional.items() if v is not None})
    if start is not None and end is not None and end >= start:
        event["latency_ms"] = min(int((end - start) * 1000), 2**31 - 1)
    cost = payload.get("response_cost")
    if isinstance(cost, (int, float, Decimal)) and not isinstance(cost, bool):
        try:
            # LiteLLM's own estimate, a float: kept to the 18 places the ledger holds.
            estimate = Decimal(str(cost)).quantize(ESTIMATE_PLACES)
        except InvalidOperation:
            estimate = None
        if estimate is not None and estimate.is_finite() and estimate >= 0:
            event["cost_usd"] = estimate
    return event


def payloads_ingest(
    *, key_tenant: Any, payloads: list[Any], api_key_id: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Per payload an answer item (`index`, `status`: accepted, duplicate, skipped or
    rejected), and how many were rejected."""
    answers: list[dict[str, Any] | None] = [None] * len(payloads)
    items: list[bytes] = []
    positions: list[int] = []
    for index, payload in enumerate(payloads):
        if isinstance(payload, _Unreadable) or not isinstance(payload, dict):
            reason = payload.reason if isinstance(payload, _Unreadable) else "not an object"
            answers[index] = {"index": index, "status": "rejected",
                              "errors": {"non_field_errors": [reason]}}  # fmt: skip
            continue
        try:
            event = payload_event(payload)
        except PayloadRejected as exc:
            answers[index] = {"index": index, "status": "rejected", "errors": exc.errors}
            event_id = payload.get("id") or payload.get("litellm_call_id")
            if isinstance(event_id, str):
                answers[index]["event_id"] = event_id
            continue
        if event is None:
            reason = "failed call or no token usage: nothing to bill"
            answers[index] = {"index": index, "status": "skipped", "reason": reason}
            continue
        items.append(_encoder.encode(event))
        positions.append(index)
    results = (
        events_ingest(key_tenant=key_tenant, items=items, api_key_id=api_key_id) if items else []
    )
    for position, result in zip(positions, results, strict=True):
        status = result.status if result.status in ("accepted", "duplicate") else "rejected"
        answer: dict[str, Any] = {"index": position, "status": status,
                                  "event_id": result.event_id}  # fmt: skip
        if status == "rejected":
            answer["errors"] = result.errors
        answers[position] = answer
    rejected = sum(1 for a in answers if a and a["status"] == "rejected")
    return [a for a in answers if a is not None], rejected
