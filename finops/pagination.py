"""Keyset pagination for lists: `{"results": [...], "next": URL or null}`.

Pages are cut on (timestamp, id) descending, so a page costs the same at any depth
and rows arriving meanwhile never shift the pages that follow.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def page_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": ["A whole number is required."]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Must be between 1 and {MAX_LIMIT}."]})
    return limit


def _decode_cursor(raw: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(raw.encode()).decode()
        stamp, _, row_id = text.rpartition("|")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("naive cursor")
        return moment.astimezone(UTC), int(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise ValidationError({"cursor": ["Invalid cursor."]}) from None


def _encode_cursor(stamp: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{row_id}".encode()).decode()


def time_keyset_page(
    request: Request, queryset: QuerySet, *, time_field: str = "timestamp"
) -> tuple[Sequence[Any], str | None]:
    """One page of `queryset`, newest first, and the URL of the next page."""
    limit = page_limit(request)
    cursor = request.query_params.get("cursor")
    if cursor:
        stamp, row_id = _decode_cursor(cursor)
        queryset = queryset.filter(
            Q(**{f"{time_field}__lt": stamp}) | Q(**{time_field: stamp, "id__lt": row_id})
        )
    rows = list(queryset.order_by(f"-{time_field}", "-id")[: limit + 1])
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_url = replace_query_param(
            request.build_absolute_uri(),
            "cursor",
            _encode_cursor(getattr(last, time_field), last.id),
        )
    return rows, next_url
