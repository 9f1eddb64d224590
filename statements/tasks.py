from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .services import statements_draft, statements_finalize


@shared_task
def statements_draft_task() -> int:
    return statements_draft(now=timezone.now()).drafted


@shared_task
def statements_finalize_task() -> int:
    return statements_finalize(now=timezone.now()).finalized
