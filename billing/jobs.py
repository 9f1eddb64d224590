"""Every periodic job, in the order one pass of the clock runs them.

Celery beat runs each on its own schedule (CELERY_BEAT_SCHEDULE in settings);
`manage.py run_jobs` runs them all once, in process, as if the clock read `now`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from console.digest import digest_write, digests_deliver
from console.reviews import lifecycles_advance, reviews_open
from ingestion.services import events_price_unpriced
from statements.services import statements_draft, statements_finalize

from .alerts import alerts_deliver
from .budgets import budgets_evaluate
from .caps import caps_check, ltv_check
from .rollups import rollups_update
from .spikes import spikes_detect


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


def _budgets(now: datetime) -> str:
    result = budgets_evaluate(now=now)
    return f"checked {result.budgets} budget(s); {result.alerts} new alert(s)"


def _spikes(now: datetime) -> str:
    result = spikes_detect(now=now)
    return (
        f"{result.alerts} new spike alert(s); kill switches tripped {result.kill_switches_on}, "
        f"cleared {result.kill_switches_off}"
    )


def _caps(now: datetime) -> str:
    return f"{caps_check(now=now).alerts} new cap alert(s)"


def _ltv(now: datetime) -> str:
    return f"{ltv_check(now=now).alerts} new free-tier throttle alert(s)"


def _digest(now: datetime) -> str:
    digest = digest_write(now=now)
    return f"wrote the {digest}" if digest else "last week's digest exists"


def _deliver(now: datetime) -> str:
    alerts, digests = alerts_deliver(now=now), digests_deliver(now=now)
    return (
        f"sent {alerts.sent} alert and {digests.sent} digest notification(s), "
        f"{alerts.failed + digests.failed} given up"
    )


def _draft(now: datetime) -> str:
    result = statements_draft(now=now)
    return f"created {result.created} statement(s); rebuilt {result.drafted} draft(s)"


def _finalize(now: datetime) -> str:
    return f"finalized {statements_finalize(now=now).finalized} statement(s)"


def _reviews(now: datetime) -> str:
    result = reviews_open(now=now)
    return f"{result.opened} retirement review(s) opened ({result.candidates} in the bottom 5%)"


def _lifecycles(now: datetime) -> str:
    return f"{lifecycles_advance(now=now)} feature(s) moved along their lifecycle"


JOBS: list[tuple[str, Callable[[datetime], Any]]] = [
    ("price-unpriced-events", _price_unpriced),
    ("rollup-usage", _rollup),
    ("evaluate-budgets", _budgets),
    ("detect-spikes", _spikes),
    ("check-caps", _caps),
    ("check-free-tier-ltv", _ltv),
    ("draft-statements", _draft),
    ("finalize-statements", _finalize),
    ("open-retirement-reviews", _reviews),
    ("advance-feature-lifecycles", _lifecycles),
    ("weekly-digest", _digest),
    ("deliver-alerts", _deliver),
]
