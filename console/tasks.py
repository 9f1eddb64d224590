from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .digest import digest_write
from .reviews import lifecycles_advance, reviews_open


@shared_task
def reviews_open_task() -> int:
    return reviews_open(now=timezone.now()).opened


@shared_task
def lifecycles_advance_task() -> int:
    return lifecycles_advance(now=timezone.now())


@shared_task
def digest_write_task() -> bool:
    return digest_write(now=timezone.now()) is not None
