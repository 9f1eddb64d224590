"""What the OTLP and LiteLLM intakes share: strict token counts and the vendors' names
of service tiers, judged the same way on both paths."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

# Service tiers as OpenAI, Anthropic and LiteLLM report them. OpenAI's "default", "auto"
# and "scale" are billed at the standard rates.
SERVICE_TIERS = {
    "default": "standard",
    "auto": "standard",
    "scale": "standard",
    "standard": "standard",
    "flex": "flex",
    "priority": "priority",
    "batch": "batch",
}


def describe(value: Any) -> str:
    """A bad value, for an error message."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return str(value)


def token_count(value: Any) -> int | None:
    """`value` as a token count, or None when it is not one. An integral number (1200.0)
    is 1200; a fraction, a negative, NaN, Infinity, a boolean or a string is not a count:
    billed as zero it would go unnoticed. A number of 10^19 or more is refused before
    int() would spend minutes building it (1e1000000)."""
    if isinstance(value, (Decimal, float)) and not isinstance(value, bool):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        small = value.adjusted() < 19 if isinstance(value, Decimal) else abs(value) < 1e19
        if finite and small and value == int(value):
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
