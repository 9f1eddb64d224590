"""The runs: each folds what committed since the watermark and moves it, in one
transaction under the watermark's row lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from billing.models import FeatureRollup, RollupWatermark, UsageRollup

from .keys import keys_prune, keys_reset
from .portable import fold_portable
from .postgresql import fold_postgresql
from .result import RollupResult

WATERMARK = "usage"
logger = logging.getLogger(__name__)

Fold = Callable[[RollupWatermark], RollupResult]


def rollups_update(*, now: datetime | None = None) -> RollupResult:
    """Fold everything that committed since the last run. (`now` is accepted for the job
    runner's signature; a run always folds up to the present.)"""
    return _run(rebuild=False)


def rollups_rebuild() -> RollupResult:
    """Drop the aggregates and fold the whole ledger again."""
    return _run(rebuild=True)


def fold_for_database() -> Fold:
    """PostgreSQL sums exactly in SQL; elsewhere the fold runs in Python."""
    return fold_postgresql if connection.vendor == "postgresql" else fold_portable


def _run(*, rebuild: bool) -> RollupResult:
    started = time.perf_counter()
    RollupWatermark.objects.get_or_create(name=WATERMARK)
    with transaction.atomic():
        # The row lock makes concurrent runs take turns; each reads the position the
        # previous one committed.
        mark = RollupWatermark.objects.select_for_update().get(name=WATERMARK)
        if rebuild:
            rollups_reset(mark)
        result = rollups_fold(mark, fold=fold_for_database())
        mark.updated_at = timezone.now()
        mark.save()
        committing = time.perf_counter()
    logger.debug("rollup commit: %.3f s", time.perf_counter() - committing)
    result.seconds = time.perf_counter() - started
    return result


def rollups_reset(mark: RollupWatermark) -> None:
    """Empty the aggregates and the keys and rewind `mark` (not saved)."""
    UsageRollup.objects.all().delete()
    FeatureRollup.objects.all().delete()
    keys_reset()
    mark.events_position = mark.changes_position = 0


def rollups_fold(mark: RollupWatermark, *, fold: Fold) -> RollupResult:
    """One run's work in the caller's transaction: fold from `mark` with `fold`, moving
    `mark` (not saved), and prune the keys no event can reach any more."""
    result = fold(mark)
    keys_prune()
    return result
