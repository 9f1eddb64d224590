"""The guard's request and answer as msgspec types: the endpoint is on every model
call's path, so it skips the serializer machinery. The answer is `rules.GuardDecision`;
the OpenAPI schema is generated from both (`openapi`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec
from msgspec import Meta

from ingestion.schema import field_errors

Errors = dict[str, list[str]]


TenantSlug = Annotated[
    str,
    Meta(min_length=1, max_length=64, description="Tenant slug; a tenant key may leave it out."),
]
PromptTemplateKey = Annotated[
    str, Meta(max_length=128, description="Lets budgets scoped to a prompt template apply.")
]
EstimatedCost = Annotated[
    Decimal,
    Meta(
        description="The call's expected cost, reserved until its event arrives (default: "
        "the average call of this feature and model over the last 7 days)."
    ),
]


class GuardRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    tenant: TenantSlug | None = None
    feature: Annotated[str, Meta(max_length=128)] = ""
    user: Annotated[str, Meta(max_length=200)] = ""
    prompt_template: PromptTemplateKey = ""
    estimated_cost: EstimatedCost | None = None


_decoder = msgspec.json.Decoder(GuardRequest)
_TEXT = ("model", "tenant", "feature", "user", "prompt_template")


def guard_request_decode(body: bytes) -> tuple[GuardRequest | None, Errors]:
    """The request, or field-level errors."""
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        return None, {
            field: [m.replace("the event schema", "the guard request") for m in messages]
            for field, messages in field_errors(exc).items()
        }
    except msgspec.DecodeError as exc:
        return None, {"non_field_errors": [f"Malformed JSON: {exc}"]}
    errors = {**_text_errors(request), **_cost_errors(request.estimated_cost)}
    return (None, errors) if errors else (request, {})


def _text_errors(request: GuardRequest) -> Errors:
    return {
        name: ["May not contain the NUL character."]
        for name in _TEXT
        if "\x00" in (getattr(request, name) or "")
    }


def _cost_errors(cost: Decimal | None) -> Errors:
    if cost is None:
        return {}
    if not cost.is_finite() or cost < 0:
        return {"estimated_cost": ["A decimal amount of at least 0 is required."]}
    if cost.as_tuple().exponent < -18 or cost.adjusted() >= 12:
        return {"estimated_cost": ["At most 12 digits before the point and 18 after."]}
    return {}
