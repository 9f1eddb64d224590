"""The guard's request body, decoded and checked by msgspec: the endpoint is on every
model call's path, so it skips the serializer machinery."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ingestion.schema import field_errors


class GuardIn(msgspec.Struct, forbid_unknown_fields=True):
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    tenant: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    feature: Annotated[str, Meta(max_length=128)] = ""
    user: Annotated[str, Meta(max_length=200)] = ""
    prompt_template: Annotated[str, Meta(max_length=128)] = ""
    estimated_cost: Decimal | None = None


_decoder = msgspec.json.Decoder(GuardIn)
_TEXT = ("model", "tenant", "feature", "user", "prompt_template")


def guard_request_decode(body: bytes) -> tuple[GuardIn | None, dict[str, list[str]]]:
    """The request, or field-level errors."""
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        errors = field_errors(exc)
        return None, {
            k: [m.replace("the event schema", "the guard request") for m in v]
            for k, v in errors.items()
        }
    except msgspec.DecodeError as exc:
        return None, {"non_field_errors": [f"Malformed JSON: {exc}"]}
    errors: dict[str, Any] = {}
    for name in _TEXT:
        value = getattr(request, name)
        if value and "\x00" in value:
            errors[name] = ["May not contain the NUL character."]
    cost = request.estimated_cost
    if cost is not None:
        if not cost.is_finite() or cost < 0:
            errors["estimated_cost"] = ["A decimal amount of at least 0 is required."]
        elif cost.as_tuple().exponent < -18 or cost.adjusted() >= 12:
            errors["estimated_cost"] = ["At most 12 digits before the point and 18 after."]
    return (None, errors) if errors else (request, {})
