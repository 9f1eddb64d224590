"""Budget and billing periods, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MINUTE = "minute"
HOUR = "hour"
DAY = "day"
MONTH = "month"


def period_start(period: str, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    if period == MINUTE:
        return at.replace(second=0, microsecond=0)
    if period == HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    if period == DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == MONTH:
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown period {period!r}")


def period_end(period: str, start: datetime) -> datetime:
    if period == MINUTE:
        return start + timedelta(minutes=1)
    if period == HOUR:
        return start + timedelta(hours=1)
    if period == DAY:
        return start + timedelta(days=1)
    if period == MONTH:
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def period_label(period: str, start: datetime) -> str:
    if period == MINUTE:
        return f"{start:%Y-%m-%d %H:%M} UTC"
    if period == HOUR:
        return f"{start:%Y-%m-%d %H:00} UTC"
    if period == DAY:
        return f"{start:%Y-%m-%d}"
    return f"{start:%Y-%m}"


def clock_reading(now: str | datetime | None) -> datetime:
    """The instant a periodic job runs as of: `now` when given (an ISO 8601 string, as a
    task's argument arrives, or a datetime), else the clock's."""
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, datetime):
        return now
    return datetime.fromisoformat(now)
