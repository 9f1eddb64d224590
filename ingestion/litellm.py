"""LiteLLM's `generic_api` logger as usage events.

LiteLLM posts its StandardLoggingPayload objects as a JSON array (`json_array`, the
default), as newline-delimited JSON (`ndjson`) or one per request (`single`). Each
successful call with token usage becomes one event through `events_ingest`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from django.conf import settings

from .services import events_ingest

_encoder = msgspec.json.Encoder(decimal_format="string")
ESTIMATE_PLACES = Decimal("1e-18")


class LiteLLMError(Exception):
    """The body holds no LiteLLM payload at all (answered 400)."""


def split_payloads(body: bytes) -> list[Any]:
    """Every payload of a body in any of the three log formats."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        raise LiteLLMError("Empty body.")
    try:
        document = json.loads(text, parse_float=Decimal)
    except ValueError:
        document = None
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        return [document]
    payloads: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            payloads.append(json.loads(line, parse_float=Decimal))
        except ValueError:
            payloads.append(_Unreadable(f"line {number} is not JSON"))
    if not payloads or all(isinstance(p, _Unreadable) for p in payloads):
        raise LiteLLMError("The body is neither a JSON array, a JSON object nor NDJSON.")
    return payloads


class _Unreadable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tags(payload: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    tags = payload.get("request_tags") or []
    metadata = payload.get("metadata") or {}
    if isinstance(metadata, dict):
        tags = list(tags) + list(metadata.get("tags") or [])
    for tag in tags:
        if isinstance(tag, str) and ":" in tag:
            name, _, value = tag.partition(":")
            found.setdefault(name.strip(), value.strip())
    return found


def _usage(payload: dict[str, Any]) -> dict[str, Any]:
    response = payload.get("response")
    if isinstance(response, dict) and isinstance(response.get("usage"), dict):
        return response["usage"]
    return {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (Decimal, float)) and value == int(value):
        return int(value)
    return None


def payload_event(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The event of one payload, or None when it bills nothing (a failed call, no
    tokens)."""
    if payload.get("status") not in (None, "success"):
        return None
    prompt = _int(payload.get("prompt_tokens"))
    completion = _int(payload.get("completion_tokens"))
    if not prompt and not completion:
        return None
    usage = _usage(payload)
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens") if isinstance(details, dict) else None) or 0
    cache_write = _int(usage.get("cache_creation_input_tokens")) or 0
    completion_details = usage.get("completion_tokens_details") or {}
    reasoning = 0
    if isinstance(completion_details, dict):
        reasoning = _int(completion_details.get("reasoning_tokens")) or 0
    response = payload.get("response")
    model = (response.get("model") if isinstance(response, dict) else None) or payload.get("model")
    tags = _tags(payload)
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    tenant = tags.get("tenant") or metadata.get(settings.FINOPS_LITELLM_TENANT_FIELD)
    end = payload.get("endTime")
    event: dict[str, Any] = {
        "event_id": str(payload.get("id") or payload.get("litellm_call_id") or ""),
        "timestamp": (
            datetime.fromtimestamp(float(end), UTC).isoformat()
            if isinstance(end, (int, float, Decimal)) and not isinstance(end, bool)
            else end
        ),
        "model": model,
        "input_tokens": prompt or 0,
        "output_tokens": completion or 0,
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
    }
    optional = {
        "tenant": tenant if isinstance(tenant, str) and tenant else None,
        "feature": tags.get("feature"),
        "prompt_template": tags.get("prompt"),
        "provider": payload.get("custom_llm_provider") or None,
        "user": payload.get("end_user") or None,
    }
    event.update({k: v for k, v in optional.items() if v is not None})
    start = payload.get("startTime")
    if isinstance(start, (int, float, Decimal)) and isinstance(end, (int, float, Decimal)):
        if end >= start:
            event["latency_ms"] = min(int((Decimal(str(end)) - Decimal(str(start))) * 1000),
                                      2**31 - 1)  # fmt: skip
    cost = payload.get("response_cost")
    if cost is not None and not isinstance(cost, bool):
        try:
            # LiteLLM's own estimate, a float: kept to the 18 places the ledger holds.
            event["cost_usd"] = Decimal(str(cost)).quantize(ESTIMATE_PLACES)
        except InvalidOperation:
            pass
    return event


def payloads_ingest(*, key_tenant: Any, payloads: list[Any]) -> tuple[list[dict[str, Any]], int]:
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
        event = payload_event(payload)
        if event is None:
            reason = "failed call or no token usage: nothing to bill"
            answers[index] = {"index": index, "status": "skipped", "reason": reason}
            continue
        items.append(_encoder.encode(event))
        positions.append(index)
    rejected = 0
    for position, result in zip(positions, events_ingest(key_tenant=key_tenant, items=items),
                                strict=True):  # fmt: skip
        status = result.status if result.status in ("accepted", "duplicate") else "rejected"
        answer: dict[str, Any] = {"index": position, "status": status,
                                  "event_id": result.event_id}  # fmt: skip
        if status == "rejected":
            answer["errors"] = result.errors
        answers[position] = answer
    rejected = sum(1 for a in answers if a and a["status"] == "rejected")
    return [a for a in answers if a is not None], rejected
