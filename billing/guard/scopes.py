"""What a counter sums, and the names of counters and reservation queues in Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from ..models import UsageRollup

_PERIOD_FORMAT = {"hour": "%Y%m%d%H", "day": "%Y%m%d", "month": "%Y%m"}


@dataclass(frozen=True, slots=True)
class Scope:
    """The ledger's cost of events in [start, end) that match every dimension given.
    `shape` names which dimensions (and the period) a calendar counter has; window
    counters (a free-tier tenant's first 30 days) have none."""

    name: str
    shape: str
    start: datetime
    end: datetime
    grain: str | None  # the rollup grain the period is made of; None: events only
    tenant_id: int | None = None
    feature: tuple[int, str] | None = None  # (id, key)
    prompt_template: tuple[int, str] | None = None  # (id, key)
    model: str | None = None


@lru_cache(maxsize=4096)
def calendar_scope(
    *,
    period: str,
    start: datetime,
    end: datetime,
    tenant_id: int | None = None,
    feature: tuple[int, str] | None = None,
    prompt_template: tuple[int, str] | None = None,
    model: str | None = None,
) -> Scope:
    """A counter of one calendar period. Its name is built exactly as the increment
    script builds it from an event (see `lua.APPLY`): shape, period, then the dimensions
    in the order tenant, feature, prompt template, model (the only free text, last).
    Scopes are immutable, so the guard's repeated ones are built once."""
    dims = {"t": tenant_id, "f": feature, "p": prompt_template, "m": model}
    shape = "".join(flag if value is not None else "-" for flag, value in dims.items())
    shape = f"{shape}:{period}"
    name = ":".join(
        [
            shape,
            start.astimezone(UTC).strftime(_PERIOD_FORMAT[period]),
            _part(tenant_id),
            _part(feature[0] if feature else None),
            _part(prompt_template[0] if prompt_template else None),
            _part(model),
        ]
    )
    grain = UsageRollup.Grain.HOUR if period == "hour" else UsageRollup.Grain.DAY
    return Scope(name, shape, start, end, grain, tenant_id, feature, prompt_template, model)


def _part(value: int | str | None) -> str:
    return "" if value is None else str(value)


@lru_cache(maxsize=1024)
def window_scope(*, tenant_id: int, start: datetime, end: datetime) -> Scope:
    """A tenant's spend in a window that need not align with hours (its free days)."""
    name = f"ltv:{tenant_id}:{int(start.timestamp() * 1_000_000)}:{int(end.timestamp())}"
    return Scope(name, "", start, end, None, tenant_id)


def queue_name(tenant_id: int, feature_key: str, model: str) -> str:
    """Where the reservations of a tenant's calls of one feature and model wait for
    their events."""
    return f"g:q:{tenant_id}:{feature_key}\x1f{model}"
