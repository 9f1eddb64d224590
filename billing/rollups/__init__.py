"""Folding the ledger into hourly and daily aggregates, incrementally and exactly once.

Each run reads only what committed since the last one and moves the watermark in the
same transaction as the aggregates, under a row lock: a re-run, a concurrent run or a
worker killed midway can neither count twice nor lose anything. Late events land in their
own hour; a late price reaches the aggregates as a `CostChange`.

- `driver`: the runs (`rollups_update`, `rollups_rebuild`) and the watermark;
- `postgresql` and `sql`: the fold on PostgreSQL, a few statements spelled out whole;
- `portable`: the same fold in Python with `Decimal` (SQLite, whose SUM is floating point);
- `keys`: the day keys' life cycle (sessions and prompt hashes seen per tenant and day);
- `brin`: upkeep of the events' BRIN index the PostgreSQL fold reads them by.
"""

from __future__ import annotations

from .columns import METRIC_SUMS, SUMS
from .driver import WATERMARK, rollups_rebuild, rollups_update
from .keys import KEYS_WHOLE, keys_kept_from
from .result import RollupResult

__all__ = [
    "KEYS_WHOLE",
    "METRIC_SUMS",
    "SUMS",
    "WATERMARK",
    "RollupResult",
    "keys_kept_from",
    "rollups_rebuild",
    "rollups_update",
]
