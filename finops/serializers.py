"""The serializer base of every endpoint: a key the serializer does not declare as
writable is a field error, never silently dropped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."
READ_ONLY_FIELD = "This field cannot be set."


class StrictFieldsMixin:
    """Rejects every key the serializer does not declare as writable, beside the other
    field errors: a misspelt optional field (`montly_cap`) must not be silently dropped."""

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            fields = self.fields  # type: ignore[attr-defined]
            for name in data:
                field = fields.get(name)
                if field is None:
                    unknown[str(name)] = [UNKNOWN_FIELD]
                elif field.read_only:
                    unknown[str(name)] = [READ_ONLY_FIELD]
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictQuery(StrictSerializer):
    """A list's query string: its filters plus the pagination parameters."""

    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    cursor = serializers.CharField(required=False, max_length=200)
