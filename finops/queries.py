"""Query-string serializers shared by the report endpoints."""

from __future__ import annotations

from rest_framework import serializers

from .serializers import StrictSerializer


class TimeRangeQuery(StrictSerializer):
    """`from` (a Python keyword, hence `from_` here) and `to`: a half-open time range."""

    from_ = serializers.DateTimeField(help_text="Start, inclusive (RFC 3339).")
    to = serializers.DateTimeField(help_text="End, exclusive.")

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
