from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .alerts import alerts_deliver
from .budgets import budgets_evaluate
from .caps import caps_check, ltv_check
from .rollups import rollups_update
from .spikes import spikes_detect


@shared_task
def rollups_update_task() -> int:
    return rollups_update().events


@shared_task
def budgets_evaluate_task() -> int:
    return budgets_evaluate(now=timezone.now()).alerts


@shared_task
def spikes_detect_task() -> int:
    return spikes_detect(now=timezone.now()).alerts


@shared_task
def caps_check_task() -> int:
    now = timezone.now()
    return caps_check(now=now).alerts + ltv_check(now=now).alerts


@shared_task
def alerts_deliver_task() -> int:
    # Digests go out through the same channels, on the same clock.
    from console.digest import digests_deliver

    return alerts_deliver().sent + digests_deliver().sent
