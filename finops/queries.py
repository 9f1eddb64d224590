"""Query-string serializers shared by the report endpoints."""

from __future__ import annotations

from datetime import timedelta

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


def window_checked(attrs: dict, *, max_days: int) -> dict:
    """A range's own checks: `to` after `from`, at most `max_days` days after it, both in
    the years 1971 to 9998 (a range's neighbours, the one before and the month after,
    are dates too)."""
    start, end = attrs["from"], attrs["to"]
    for name, value in (("from", start), ("to", end)):
        if not 1971 <= value.year <= 9998:
            raise serializers.ValidationError({name: ["Must fall in the years 1971 to 9998."]})
    if end <= start:
        raise serializers.ValidationError({"to": ["Must be after 'from'."]})
    if end - start > timedelta(days=max_days):
        raise serializers.ValidationError({"to": [f"At most {max_days} days after 'from'."]})
    return attrs
