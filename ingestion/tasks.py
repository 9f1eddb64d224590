"""Ingestion's periodic job. Every task takes `now` (ISO 8601, default: the clock) and
returns the line `manage.py run_jobs` prints for it."""

from __future__ import annotations

from celery import shared_task

from finops.periods import clock_reading

from .services import events_price_unpriced


@shared_task
def events_price_unpriced_task(now: str | None = None) -> str:
    result = events_price_unpriced(now=clock_reading(now))
    return (
        f"priced {result.priced} event(s) for {result.cost} in total; "
        f"{result.still_unpriced} still without a price"
    )
