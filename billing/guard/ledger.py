"""The ledger's figure for a counter's scope: what a seed installs, and what the guard
reads when Redis is down or absent."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Sum

from finops.fields import ExactSum
from finops.money import EXACT
from ingestion.models import CostChange, UsageEvent

from ..models import RollupWatermark, UsageRollup
from ..rollups import WATERMARK
from .scopes import TOKENS, Scope

_WATERMARK_TRIES = 5


def ledger_spend(scope: Scope) -> tuple[Decimal, str | None]:
    """The scope's exact spend (or tokens) in the ledger, and on PostgreSQL the snapshot
    it was read in (`xmin:xmax:xip,...`). Calendar scopes read the rollups up to their
    watermark and the events and cost changes above it; nothing is scanned twice or
    missed."""
    spend, snapshot, _ = ledger_seed(scope)
    return spend, snapshot


def ledger_seed(scope: Scope) -> tuple[Decimal, str | None, str]:
    """`ledger_spend`, and the reservations recorded on the scope's counter in the same
    snapshot (`id:nanos:expires_ms,...`; PostgreSQL only)."""
    if connection.vendor == "postgresql":
        return _ledger_spend_postgresql(scope)
    with transaction.atomic():  # one read snapshot
        return _ledger_spend_generic(scope), None, ""


# --- PostgreSQL: one statement, one snapshot -----------------------------------------


def _event_filters(scope: Scope, alias: str) -> tuple[str, dict[str, Any]]:
    columns = {
        "tenant": ("tenant_id", scope.tenant_id),
        "feature_id": ("feature_id", scope.feature[0] if scope.feature else None),
        "prompt_id": ("prompt_template_id",
                      scope.prompt_template[0] if scope.prompt_template else None),
        "model": ("model", scope.model),
        "user": ("user", scope.user),
        "api_key": ("api_key_id", scope.api_key_id),
    }  # fmt: skip
    sql, params = [], {}
    for param, (column, value) in columns.items():
        if value is not None:
            sql.append(f'{alias}."{column}" = %({param})s')
            params[param] = value
    sql.append(f"{alias}.timestamp >= %(start)s AND {alias}.timestamp < %(end)s")
    params.update(start=scope.start, end=scope.end)
    return " AND ".join(sql), params


def _rollup_filters(scope: Scope) -> tuple[str, dict[str, Any]]:
    """Rollups carry feature and prompt template keys; tenant and model reuse the event
    filters' parameters."""
    sql = ["r.grain = %(grain)s", "r.period_start >= %(start)s", "r.period_start < %(end)s"]
    params: dict[str, Any] = {"grain": scope.grain}
    if scope.tenant_id is not None:
        sql.append("r.tenant_id = %(tenant)s")
    if scope.feature is not None:
        sql.append("r.feature = %(feature_key)s")
        params["feature_key"] = scope.feature[1]
    if scope.prompt_template is not None:
        sql.append("r.prompt_template = %(prompt_key)s")
        params["prompt_key"] = scope.prompt_template[1]
    if scope.model is not None:
        sql.append("r.model = %(model)s")
    return " AND ".join(sql), params


# The reservations recorded on the counter, read in the same snapshot as its spend.
_RESERVED = """
  (SELECT COALESCE(string_agg(g.reservation || ':' || g.nanos || ':' || g.expires_ms, ','), '')
     FROM billing_guardreservation g WHERE g.counters @> jsonb_build_array(%(counter)s::text))
"""

_EVENTS_ONLY = """
SELECT pg_current_snapshot()::text, COALESCE(sum({measure}), 0), {reserved}
  FROM ingestion_usageevent e WHERE {events}
"""

# The watermark is passed as a literal so the planner reads only the ledger's tail by
# its transaction ids; the statement reads it again, and the caller retries if a rollup
# moved it meanwhile.
_ROLLUPS_AND_TAIL = """
SELECT pg_current_snapshot()::text,
  (SELECT COALESCE(sum(r.cost), 0) FROM billing_usagerollup r
    WHERE {rollups}),
  (SELECT COALESCE(sum(COALESCE(e.cost, 0) - COALESCE(
      (SELECT sum(c.cost_delta) FROM ingestion_costchange c
        WHERE c.event_id = e.id), 0)), 0)
     FROM ingestion_usageevent e
    WHERE e.xact >= %(low_events)s AND {events}),
  (SELECT COALESCE(sum(c.cost_delta), 0)
     FROM ingestion_costchange c
     JOIN ingestion_usageevent e ON e.id = c.event_id
    WHERE c.xact >= %(low_changes)s AND {events}),
  (SELECT events_position::text || ':' || changes_position::text
     FROM billing_rollupwatermark WHERE name = %(watermark)s),
  {reserved}
"""


def _ledger_spend_postgresql(scope: Scope) -> tuple[Decimal, str | None, str]:
    events_sql, params = _event_filters(scope, "e")
    params["counter"] = scope.name
    with connection.cursor() as cursor:
        if scope.grain is None:
            measure = "e.input_tokens + e.output_tokens" if scope.measure == TOKENS else "e.cost"
            cursor.execute(
                _EVENTS_ONLY.format(measure=measure, events=events_sql, reserved=_RESERVED),
                params,
            )
            snapshot, spend, reserved = cursor.fetchone()
            return Decimal(spend), snapshot, reserved
        rollup_sql, rollup_params = _rollup_filters(scope)
        params.update(rollup_params, watermark=WATERMARK)
        sql = _ROLLUPS_AND_TAIL.format(rollups=rollup_sql, events=events_sql, reserved=_RESERVED)
        for _ in range(_WATERMARK_TRIES):
            mark = RollupWatermark.objects.filter(name=WATERMARK).values_list(
                "events_position", "changes_position"
            )
            params["low_events"], params["low_changes"] = mark.first() or (0, 0)
            cursor.execute(sql, params)
            snapshot, folded, events, changes, seen, reserved = cursor.fetchone()
            if seen in (None, f"{params['low_events']}:{params['low_changes']}"):
                with localcontext(EXACT):
                    return folded + events + changes, snapshot, reserved
    raise RuntimeError("the rollup watermark kept moving while a counter was read")


# --- Any database: the same figure through the ORM -----------------------------------


def _dimensions(scope: Scope) -> dict[str, Any]:
    """The scope's filters on an event."""
    kwargs: dict[str, Any] = {"timestamp__gte": scope.start, "timestamp__lt": scope.end}
    if scope.tenant_id is not None:
        kwargs["tenant_id"] = scope.tenant_id
    if scope.feature is not None:
        kwargs["feature_id"] = scope.feature[0]
    if scope.prompt_template is not None:
        kwargs["prompt_template_id"] = scope.prompt_template[0]
    if scope.model is not None:
        kwargs["model"] = scope.model
    if scope.user is not None:
        kwargs["user"] = scope.user
    if scope.api_key_id is not None:
        kwargs["api_key_id"] = scope.api_key_id
    return kwargs


def scope_events(scope: Scope) -> QuerySet[UsageEvent]:
    """The events a scope counts."""
    return UsageEvent.objects.filter(**_dimensions(scope))


def _rollup_dimensions(scope: Scope) -> dict[str, Any]:
    """The scope's filters on a rollup row."""
    kwargs: dict[str, Any] = {"grain": scope.grain, "period_start__gte": scope.start,
                              "period_start__lt": scope.end}  # fmt: skip
    if scope.tenant_id is not None:
        kwargs["tenant_id"] = scope.tenant_id
    if scope.feature is not None:
        kwargs["feature"] = scope.feature[1]
    if scope.prompt_template is not None:
        kwargs["prompt_template"] = scope.prompt_template[1]
    if scope.model is not None:
        kwargs["model"] = scope.model
    return kwargs


def _sum(rows: Any, field: str) -> Decimal:
    return rows.aggregate(s=ExactSum(field))["s"] or Decimal(0)


def _ledger_spend_generic(scope: Scope) -> Decimal:
    events = scope_events(scope)
    if scope.measure == TOKENS:
        tokens = events.aggregate(n=Sum(F("input_tokens") + F("output_tokens")))["n"]
        return Decimal(tokens or 0)
    if scope.grain is None:
        return _sum(events, "cost")
    # Without transaction ids (SQLite runs one writer at a time), positions are row ids.
    mark = RollupWatermark.objects.filter(name=WATERMARK).first()
    low_events = mark.events_position if mark else 0
    low_changes = mark.changes_position if mark else 0
    folded = _sum(UsageRollup.objects.filter(**_rollup_dimensions(scope)), "cost")
    tail = events.filter(id__gt=low_events)
    # The tail's events count as inserted: their cost changes are added below (or were
    # folded already).
    tail_changes = _sum(CostChange.objects.filter(event__in=tail.values("id")), "cost_delta")
    event_q = Q(**{f"event__{k}": v for k, v in _dimensions(scope).items()})
    changes = _sum(CostChange.objects.filter(event_q, id__gt=low_changes), "cost_delta")
    with localcontext(EXACT):
        return folded + _sum(tail, "cost") - tail_changes + changes
