"""The guard: allow, downgrade or block one model call, before it is made.

One idea per module, bottom up: `amounts` (exact amounts as Redis holds them), `lua`
(the counters' scripts), `redis` (connection, scripts, whether Redis is up), `scopes`
(what a counter sums, and its name), `reservations` (calls in flight recorded in
PostgreSQL), `ledger` (a scope's spend from the database), `seeding` (a counter
installed from the ledger), `counters` (limits checked against spend plus
reservations), `increments` (committed spend and settled reservations applied to the
counters), `policies` (tenants, features, caps, budgets and rate limits kept in
memory), `estimates` (a call's
expected cost), `rules` (the rules in first-match order, and the decision), `schema`
(the request and answer), `views` (the endpoint), `openapi` (its schema).
"""

from __future__ import annotations

from .estimates import call_estimate
from .increments import spend_increment, spend_recorded_receiver
from .policies import policy_cache_clear, tenant_by_slug
from .rules import (
    ALLOW,
    BLOCK,
    BUDGET_EXCEEDED,
    DOWNGRADE,
    FEATURE_CAP_REACHED,
    FEATURE_SUNSET,
    LTV_THROTTLED,
    SPEND_SPIKE,
    TENANT_CAP_REACHED,
    TENANT_SUSPENDED,
    GuardDecision,
    guard_decide,
)

__all__ = [
    "ALLOW",
    "BLOCK",
    "BUDGET_EXCEEDED",
    "DOWNGRADE",
    "FEATURE_CAP_REACHED",
    "FEATURE_SUNSET",
    "LTV_THROTTLED",
    "SPEND_SPIKE",
    "TENANT_CAP_REACHED",
    "TENANT_SUSPENDED",
    "GuardDecision",
    "call_estimate",
    "guard_decide",
    "policy_cache_clear",
    "spend_increment",
    "spend_recorded_receiver",
    "tenant_by_slug",
]
