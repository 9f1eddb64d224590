"""Puts `POST /api/v1/guard` into the OpenAPI document (a drf-spectacular postprocessing
hook): the view is a plain Django function, which drf-spectacular does not list, and its
request and answer are generated from the msgspec types the view decodes and encodes."""

from __future__ import annotations

from typing import Any

import msgspec

from .rules import GuardDecision
from .schema import GuardRequest

PATH = "/api/v1/guard"
REF = "#/components/schemas/{name}"

_DETAIL = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
_FIELD_ERRORS = {
    "type": "object",
    "description": "Messages by field (`non_field_errors` for the body as a whole).",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def add_guard_path(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    (request, answer), components = msgspec.json.schema_components(
        [GuardRequest, GuardDecision], ref_template=REF
    )
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    detail = {"$ref": REF.format(name="Detail")}
    schemas.setdefault("Detail", _DETAIL)
    operation = {
        "operationId": "api_v1_guard_create",
        "summary": "Allow, downgrade or block one model call before it is made.",
        "description": (
            "The decision is data (always 200), never an HTTP error, so clients do not "
            "retry it as a failure. Keys with the `ingest` scope: a tenant key for its own "
            "tenant, an operator key for the tenant named."
        ),
        "tags": ["api"],
        "security": [{"ApiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {
            "200": _json(answer, "The decision."),
            "400": _json(_FIELD_ERRORS, "Malformed JSON or invalid fields."),
            "401": _json(detail, "No valid API key."),
            "403": _json(detail, "The key lacks the `ingest` scope."),
            "404": _json(detail, "No such tenant (or another tenant's)."),
            "413": _json(detail, "Request body too large (64 KiB)."),
        },
    }
    paths = {**result.get("paths", {}), PATH: {"post": operation}}
    result["paths"] = dict(sorted(paths.items()))
    return result
