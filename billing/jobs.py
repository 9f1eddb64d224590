"""Every periodic job, in the order one pass of the clock runs them.

Celery beat runs each on its own schedule (CELERY_BEAT_SCHEDULE in settings);
`manage.py run_jobs` runs them all once, in process, as if the clock read `now`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ingestion.services import events_price_unpriced

from .rollups import rollups_update


def _price_unpriced(now: datetime) -> str:
    result = events_price_unpriced(now=now)
    return (
        f"priced {result.priced} event(s) for {result.cost} in total; "
        f"{result.still_unpriced} still without a price"
    )


def _rollup(now: datetime) -> str:
    result = rollups_update(now=now)
    return (
        f"folded {result.events} event(s) and {result.changes} cost change(s) into "
        f"{result.rows} aggregate row(s) in {result.seconds:.2f}s"
    )


JOBS: list[tuple[str, Callable[[datetime], Any]]] = [
    ("price-unpriced-events", _price_unpriced),
    ("rollup-usage", _rollup),
]
