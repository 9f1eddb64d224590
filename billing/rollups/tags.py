"""The reported tag: the value of one configured key of an event's tags
(`FINOPS_REPORT_TAG_KEY`), a rollup dimension.

PostgreSQL's fold takes it as `tags ->> key`; the portable fold computes here the text
that operator gives, from the tags' JSON text, so that both folds key the same rows
whatever the tag holds: a string as it is, JSON null or a missing key as '' (as the
other empty dimensions), a number, boolean, array or object as jsonb prints it (`true`,
`1`, `1.50`, `{"a": 1, "bb": [1, 2]}`). The API takes strings only; other values come
from rows written some other way.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings

from .columns import TAG_LENGTH


def tag_key() -> str:
    """The key whose value the rollups keep ('': none, the column is always '')."""
    return settings.FINOPS_REPORT_TAG_KEY


def tag_value(tags_json: str | None, key: str) -> str:
    """`tags ->> key` of the tags' JSON text, '' for SQL NULL, to TAG_LENGTH characters
    (PostgreSQL's `left`, which counts characters as Python does code points)."""
    if not key or not tags_json:
        return ""
    tags = json.loads(tags_json, parse_float=Decimal)
    value = tags.get(key) if isinstance(tags, dict) else None
    if value is None:
        return ""
    text = value if isinstance(value, str) else _jsonb_text(value)
    return text[:TAG_LENGTH]


def _jsonb_text(value: Any) -> str:
    """A JSON value as jsonb's output writes it: numbers as `numeric` prints them (no
    exponent, the scale kept, no negative zero), ', ' and ': ' between items, an object's
    keys shorter first, then bytewise, the last of duplicates kept (as `json.loads`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value.copy_abs() if value.is_zero() else value, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # escapes as PostgreSQL's escape_json
    if isinstance(value, list):
        return "[" + ", ".join(_jsonb_text(item) for item in value) + "]"
    keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
    return "{" + ", ".join(f"{_jsonb_text(k)}: {_jsonb_text(value[k])}" for k in keys) + "}"
