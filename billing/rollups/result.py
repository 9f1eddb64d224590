from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RollupResult:
    """What one run folded: events, cost changes, rollup rows written; its duration."""

    events: int = 0
    changes: int = 0
    rows: int = 0
    seconds: float = 0.0
