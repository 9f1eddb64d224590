"""The console's periodic jobs. Every task takes `now` (ISO 8601, default: the clock)
and returns the line `manage.py run_jobs` prints for it."""

from __future__ import annotations

from celery import shared_task

from finops.periods import clock_reading

from .alarms import alarms_check
from .digest import digest_write, digests_deliver
from .economics import feature_reach_count
from .projection import projections_snapshot
from .reviews import lifecycles_advance, reviews_open


@shared_task
def reviews_open_task(now: str | None = None) -> str:
    result = reviews_open(now=clock_reading(now))
    return f"{result.opened} retirement review(s) opened ({result.candidates} in the bottom 5%)"


@shared_task
def lifecycles_advance_task(now: str | None = None) -> str:
    return f"{lifecycles_advance(now=clock_reading(now))} feature(s) moved along their lifecycle"


@shared_task
def digest_write_task(now: str | None = None) -> str:
    digest = digest_write(now=clock_reading(now))
    return f"wrote the {digest}" if digest else "last week's digest exists"


@shared_task
def digests_deliver_task(now: str | None = None) -> str:
    result = digests_deliver(now=clock_reading(now))
    return f"sent {result.sent} digest notification(s), {result.failed} given up"


@shared_task
def alarms_check_task(now: str | None = None) -> str:
    result = alarms_check(now=clock_reading(now))
    return (
        f"checked last week's metrics for {result.scopes} scope(s): {result.raised} new "
        f"metric alert(s), {result.resolved} resolved; {result.overruns} projection overrun(s)"
    )


@shared_task
def projections_snapshot_task(now: str | None = None) -> str:
    run = projections_snapshot(now=clock_reading(now))
    return f"kept {run.made} month projection(s); set {run.actuals} ended month(s)' actual cost"


@shared_task
def feature_reach_task(now: str | None = None) -> str:
    result = feature_reach_count(now=clock_reading(now))
    periods = ", ".join(f"{period} {start:%Y-%m-%d}" for period, start in result.periods)
    return f"counted feature reach for {periods}: {result.rows} row(s)"
