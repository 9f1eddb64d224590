"""Billing's periodic jobs. Every task takes `now` (ISO 8601, default: the clock) and
returns the line `manage.py run_jobs` prints for it."""

from __future__ import annotations

from celery import shared_task

from finops.periods import clock_reading

from .alerts import alerts_deliver
from .budgets import budgets_evaluate
from .caps import caps_check, ltv_check
from .guard.reservations import reservations_prune
from .rollups import rollups_update
from .spikes import spikes_detect


@shared_task
def rollups_update_task(now: str | None = None) -> str:
    result = rollups_update(now=clock_reading(now))
    return (
        f"folded {result.events} event(s) and {result.changes} cost change(s) into "
        f"{result.rows} aggregate row(s) in {result.seconds:.2f}s"
    )


@shared_task
def budgets_evaluate_task(now: str | None = None) -> str:
    result = budgets_evaluate(now=clock_reading(now))
    return f"checked {result.budgets} budget(s); {result.alerts} new alert(s)"


@shared_task
def spikes_detect_task(now: str | None = None) -> str:
    result = spikes_detect(now=clock_reading(now))
    return (
        f"{result.alerts} new spike alert(s); kill switches tripped {result.kill_switches_on}, "
        f"cleared {result.kill_switches_off}"
    )


@shared_task
def caps_check_task(now: str | None = None) -> str:
    return f"{caps_check(now=clock_reading(now)).alerts} new cap alert(s)"


@shared_task
def ltv_check_task(now: str | None = None) -> str:
    return f"{ltv_check(now=clock_reading(now)).alerts} new free-tier throttle alert(s)"


@shared_task
def guard_reservations_prune_task(now: str | None = None) -> str:
    now_ms = int(clock_reading(now).timestamp() * 1000)
    return f"deleted {reservations_prune(now_ms=now_ms)} expired guard reservation(s)"


@shared_task
def alerts_deliver_task(now: str | None = None) -> str:
    result = alerts_deliver(now=clock_reading(now))
    return f"sent {result.sent} alert notification(s), {result.failed} given up"
