from __future__ import annotations

from celery import shared_task

from .rollups import rollups_update


@shared_task
def rollups_update_task() -> int:
    return rollups_update().events
