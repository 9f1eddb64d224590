"""Puts the event schema, generated from the msgspec validator, into the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec

from .schema import EventIn

REF = "#/components/schemas/{name}"


def add_event_schema(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    (event_schema,), components = msgspec.json.schema_components([EventIn], ref_template=REF)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    schemas["EventBatch"] = {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": event_schema}
        },
    }
    operation = result.get("paths", {}).get("/api/v1/events", {}).get("post")
    if operation is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [event_schema, {"$ref": REF.format(name="EventBatch")}]}
                }
            },
        }
    return result
