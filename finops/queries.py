"""Query-string serializers shared by the report endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


class AlignedRangeQuery(TimeRangeQuery):
    """`from` and `to` on `boundary` boundaries (UTC: "hour" or "day"), `to` after `from`
    and at most `max_days` days after it, as the rollups they are read from are kept."""

    boundary = "hour"
    boundary_error = "Must fall on an hour boundary: usage is kept per hour and per day."
    max_days = 400

    def _aligned(self, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        off = value.minute or value.second or value.microsecond
        if off or (self.boundary == "day" and value.hour):
            raise serializers.ValidationError(self.boundary_error)
        return value

    def validate_from(self, value: datetime) -> datetime:
        return self._aligned(value)

    def validate_to(self, value: datetime) -> datetime:
        return self._aligned(value)

    def validate(self, attrs: dict) -> dict:
        return window_checked(attrs, max_days=self.max_days)
