"""What a counter sums, and the names of counters and reservation queues in Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from finops.periods import period_end, period_start

from ..models import LimitScope, UsageRollup

_PERIOD_FORMAT = {"minute": "%Y%m%d%H%M", "hour": "%Y%m%d%H", "day": "%Y%m%d", "month": "%Y%m"}

COST, TOKENS = "c", "n"  # what a counter sums: exact cost, or input + output tokens
# Free text (model, end user) is separated by a character events cannot hold in those
# fields unnoticed, so that one tenant's model and user names never form another's.
SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class Scope:
    """The ledger's cost (or tokens) of events in [start, end) that match every
    dimension given. `shape` names what a calendar counter sums, which dimensions and
    the period; window counters (a free-tier tenant's first 30 days) have none."""

    name: str
    shape: str
    start: datetime
    end: datetime
    grain: str | None  # the rollup grain the period is made of; None: events only
    tenant_id: int | None = None
    feature: tuple[int, str] | None = None  # (id, key)
    prompt_template: tuple[int, str] | None = None  # (id, key)
    model: str | None = None
    user: str | None = None
    api_key_id: int | None = None
    measure: str = COST


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
    user: str | None = None,
    api_key_id: int | None = None,
    measure: str = COST,
) -> Scope:
    """A counter of one calendar period. Its name is built exactly as the increment
    script builds it from an event (see `lua.APPLY`): shape (measure, one flag per
    dimension, period), the period, then the dimensions in the order tenant, feature,
    prompt template, API key, model, end user. Scopes are immutable, so the guard's
    repeated ones are built once."""
    dims = {"t": tenant_id, "f": feature, "p": prompt_template, "k": api_key_id,
            "m": model, "u": user}  # fmt: skip
    flags = "".join(flag if value is not None else "-" for flag, value in dims.items())
    shape = f"{measure}{flags}:{period}"
    name = (
        ":".join(
            [
                shape,
                start.astimezone(UTC).strftime(_PERIOD_FORMAT[period]),
                _part(tenant_id),
                _part(feature[0] if feature else None),
                _part(prompt_template[0] if prompt_template else None),
                _part(api_key_id),
            ]
        )
        + f":{_part(model)}{SEP}{_part(user)}"
    )
    # Rollups hold cost by tenant, feature, prompt template and model, by hour or day.
    grain = None
    if measure == COST and user is None and api_key_id is None and period != "minute":
        grain = UsageRollup.Grain.HOUR if period == "hour" else UsageRollup.Grain.DAY
    return Scope(name, shape, start, end, grain, tenant_id, feature, prompt_template, model,
                 user, api_key_id, measure)  # fmt: skip


def limit_scope(
    limit: LimitScope, *, period: str, at: datetime, user: str | None, measure: str = COST
) -> Scope:
    """The counter of a budget's or rate limit's scope in the period holding `at`, for
    `user` (the limit's own end user, the call's for a limit on each end user, or None)."""
    start = period_start(period, at)
    feature = (limit.feature_id, limit.feature.key) if limit.feature_id else None
    prompt = (
        (limit.prompt_template_id, limit.prompt_template.key) if limit.prompt_template_id else None
    )
    return calendar_scope(period=period, start=start, end=period_end(period, start),
                          tenant_id=limit.tenant_id, feature=feature, prompt_template=prompt,
                          model=limit.model or None, user=user, api_key_id=limit.api_key_id,
                          measure=measure)  # fmt: skip


def _part(value: int | str | None) -> str:
    return "" if value is None else str(value)


@lru_cache(maxsize=1024)
def window_scope(*, tenant_id: int, start: datetime, end: datetime) -> Scope:
    """A tenant's spend in a window that need not align with hours (its free days)."""
    name = f"ltv:{tenant_id}:{int(start.timestamp() * 1_000_000)}:{int(end.timestamp())}"
    return Scope(name, "", start, end, None, tenant_id)


def requests_name(scope: Scope) -> str:
    """The Redis key counting the calls the guard let through in a scope's window."""
    return f"g:rr:{scope.name}"
