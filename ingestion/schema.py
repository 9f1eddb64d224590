"""The wire format of a usage event, validated by msgspec (compiled, ~1 µs an event).

DRF serializers cost ~60 µs an event, too slow for 1000-event batches; DRF still owns
authentication, the other endpoints and the OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# Ten billion tokens is far beyond any model's context; the bound keeps the sums of a
# busy hour well inside the aggregates' 64-bit columns.
NonNegInt = Annotated[int, Meta(ge=0, le=10**10)]
Count = Annotated[int, Meta(ge=0, le=2**31 - 1)]
ShortStr = Annotated[str, Meta(max_length=200)]
TagKey = Annotated[str, Meta(min_length=1, max_length=64)]
TagValue = Annotated[str, Meta(max_length=256)]


class Retrieval(msgspec.Struct, forbid_unknown_fields=True):
    chunks_retrieved: Count
    chunks_used: Count


class EventIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One model call. Unknown fields are rejected: a misspelt optional token count
    would otherwise be billed as zero without anyone noticing."""

    event_id: Annotated[str, Meta(min_length=1, max_length=128)]
    timestamp: Annotated[datetime, Meta(tz=True)]
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    input_tokens: NonNegInt
    output_tokens: NonNegInt
    tenant: Annotated[str, Meta(min_length=1, max_length=63)] | None = None
    feature: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    provider: Annotated[str, Meta(max_length=100)] = ""
    cached_input_tokens: NonNegInt = 0
    cache_write_tokens: NonNegInt = 0
    reasoning_tokens: NonNegInt = 0
    grounding_tokens: NonNegInt = 0
    wasted_tokens: NonNegInt = 0
    user: ShortStr = ""
    session: ShortStr = ""
    prompt_template: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    region: Annotated[str, Meta(max_length=64)] = ""
    routing_tier: Annotated[str, Meta(max_length=64)] = ""
    latency_ms: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    cache_hit: bool | None = None
    escalated: bool | None = None
    batch: bool = False
    service_tier: Literal["standard", "batch", "flex", "priority"] = "standard"
    cache_write_1h_tokens: NonNegInt = 0
    queries: NonNegInt = 0
    retrieval: Retrieval | None = None
    reranker_changed_order: bool | None = None
    outcome: Literal["correct", "incorrect", ""] = ""
    prompt_hash: Annotated[str, Meta(max_length=128)] = ""
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=20)] = {}
    cost_usd: Decimal | None = None
    reservation_id: Annotated[str, Meta(max_length=32, pattern="^[0-9a-f]*$")] = ""


class Envelope(msgspec.Struct):
    events: list[msgspec.Raw]


event_decoder = msgspec.json.Decoder(EventIn)
object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
canonical_encoder = msgspec.json.Encoder(decimal_format="number")

_PATH = re.compile(r" - at `\$(.*)`$")
_FIELD_IN_MESSAGE = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def field_errors(exc: msgspec.ValidationError | msgspec.DecodeError) -> dict[str, list[str]]:
    """Turn msgspec's one-line message into `{field: [message]}`."""
    message = str(exc)
    field = "non_field_errors"
    match = _PATH.search(message)
    if match:
        message = message[: match.start()]
        # `$.retrieval.chunks_used`, `$.tags[...]` (a dict value), `$.list[3]`
        path = re.sub(r"\[(\d+)\]", r".\1", match.group(1).replace("[...]", ""))
        path = path.strip(".")
        if path:
            field = path
    named = _FIELD_IN_MESSAGE.search(message)
    if named:
        field = f"{field}.{named.group(1)}" if field != "non_field_errors" else named.group(1)
        message = (
            "This field is required."
            if "missing required" in message
            else "Unknown field; see the event schema at /api/docs/."
        )
    elif not isinstance(exc, msgspec.ValidationError):
        message = f"Malformed JSON: {message}"
    return {field: [message]}
