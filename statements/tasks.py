"""Statements' periodic jobs. Every task takes `now` (ISO 8601, default: the clock) and
returns the line `manage.py run_jobs` prints for it."""

from __future__ import annotations

from celery import shared_task

from finops.periods import clock_reading

from .services import statements_draft, statements_finalize


@shared_task
def statements_draft_task(now: str | None = None) -> str:
    result = statements_draft(now=clock_reading(now))
    return f"created {result.created} statement(s); rebuilt {result.drafted} draft(s)"


@shared_task
def statements_finalize_task(now: str | None = None) -> str:
    return f"finalized {statements_finalize(now=clock_reading(now)).finalized} statement(s)"
