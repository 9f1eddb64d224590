from __future__ import annotations

from .events import ACCEPTED, CONFLICT, DUPLICATE, REJECTED, ItemResult, events_ingest
from .pricing import events_price_unpriced

__all__ = [
    "ACCEPTED",
    "CONFLICT",
    "DUPLICATE",
    "REJECTED",
    "ItemResult",
    "events_ingest",
    "events_price_unpriced",
]
