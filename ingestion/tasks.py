from __future__ import annotations

from celery import shared_task

from .services import events_price_unpriced


@shared_task
def events_price_unpriced_task() -> int:
    return events_price_unpriced().priced
