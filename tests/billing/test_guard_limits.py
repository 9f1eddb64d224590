"""The guard's limits on end users, API keys and rates, its notice for deprecated
features, and its caps when Redis loses its state.

Like test_guard, these run on the embedded SQLite (the guard reads the ledger) and on
PostgreSQL with Redis (hot counters); the ones on concurrency and Redis need the latter.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from billing.guard import counters
from billing.models import Budget, RateLimit
from finops.models import ApiKey, Tenant
from finops.periods import MONTH, period_start
from finops.services import apikey_create
from ingestion.models import Feature
from tests.conftest import event, post_events, run_at_once
from tests.factories import FeatureFactory, TenantFactory

from .test_guard import CALL, calls, guard, hot, ledger, month_scope, now

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("fresh_guard"),
]


def key_client(tenant: Tenant) -> tuple[APIClient, ApiKey]:
    key, plaintext = apikey_create(tenant=tenant, scopes=["ingest", "read"], name="app")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client, key


def blocked(answer: dict) -> tuple[str, str | None]:
    return answer["decision"], answer["error_type"]


# --- Deprecated features ----------------------------------------------------------


def test_a_deprecated_feature_is_allowed_with_a_notice_naming_its_sunset(operator) -> None:
    TenantFactory(slug="acme2")
    feature = FeatureFactory(key="document_summarization", status=Feature.Status.DEPRECATED)
    answer = guard(operator, tenant="acme2")
    assert answer["decision"] == "allow"
    assert answer["notice"] == (
        "Feature document_summarization is deprecated: no sunset date is set yet. Move its "
        "calls before then."
    )
    Feature.objects.filter(id=feature.id).update(sunset_on=date(2027, 3, 1))
    answer = guard(operator, tenant="acme2")
    assert "it will be sunset on 2027-03-01" in answer["notice"]
    Feature.objects.filter(id=feature.id).update(status=Feature.Status.ACTIVE)
    assert "notice" not in guard(operator, tenant="acme2")


# --- End users and keys -------------------------------------------------------------


def test_a_budget_for_each_end_user_counts_each_user_alone(operator, acme, globex) -> None:
    Budget.objects.create(tenant=acme, user="*", period=Budget.Period.MONTH,
                          amount=Decimal("3"), action=Budget.Action.BLOCK)  # fmt: skip
    calls(operator, 1, tenant="acme", prefix="alice-1", user="alice")
    assert guard(operator, tenant="acme", user="alice")["decision"] == "allow"
    calls(operator, 1, tenant="acme", prefix="alice-2", user="alice")
    answer = guard(operator, tenant="acme", user="alice")
    assert blocked(answer) == ("block", "budget_exceeded")
    assert "each end user" in answer["reason"] and "5.00 USD of 3.00 USD" in answer["reason"]
    # Another end user of the tenant, a call naming none, and the same name at another
    # tenant are not counted against alice's budget.
    assert guard(operator, tenant="acme", user="bob")["decision"] == "allow"
    assert guard(operator, tenant="acme")["decision"] == "allow"
    calls(operator, 2, tenant="globex", prefix="g-alice", user="alice")
    assert guard(operator, tenant="globex", user="alice")["decision"] == "allow"


def test_a_budget_on_one_end_user_leaves_the_others(operator, acme) -> None:
    Budget.objects.create(tenant=acme, user="carol", period=Budget.Period.DAY,
                          amount=Decimal("2"), action=Budget.Action.BLOCK)  # fmt: skip
    calls(operator, 1, tenant="acme", prefix="c", user="carol")
    assert blocked(guard(operator, tenant="acme", user="carol")) == ("block", "budget_exceeded")
    assert guard(operator, tenant="acme", user="dave")["decision"] == "allow"


def test_a_budget_on_an_api_key_counts_the_events_that_key_posted(acme) -> None:
    first, first_key = key_client(acme)
    second, _ = key_client(acme)
    Budget.objects.create(tenant=acme, api_key=first_key, period=Budget.Period.MONTH,
                          amount=Decimal("4"), action=Budget.Action.BLOCK)  # fmt: skip
    calls(second, 2, tenant="acme", prefix="other-key")  # another key's spend
    assert guard(first)["decision"] == "allow"
    calls(first, 2, tenant="acme", prefix="this-key")
    answer = guard(first)
    assert blocked(answer) == ("block", "budget_exceeded")
    assert f"API key {first_key.prefix}" in answer["reason"]
    assert guard(second)["decision"] == "allow"


# --- Rate limits --------------------------------------------------------------------


def test_a_token_rate_limit_blocks_with_retry_after(operator, acme, globex) -> None:
    RateLimit.objects.create(tenant=acme, window=RateLimit.Window.DAY, tokens=1_500_000)
    calls(operator, 1, tenant="acme", prefix="a")  # 1M tokens
    assert guard(operator, tenant="acme")["decision"] == "allow"
    calls(operator, 1, tenant="acme", prefix="b")
    answer = guard(operator, tenant="acme")
    assert blocked(answer) == ("block", "rate_limited")
    assert "2,000,000 tokens of 1,500,000 tokens this day" in answer["reason"]
    assert 1 <= answer["retry_after"] <= 24 * 3600
    calls(operator, 2, tenant="globex", prefix="g")
    assert guard(operator, tenant="globex")["decision"] == "allow"


def test_a_cost_rate_limit_per_end_user(operator, acme) -> None:
    RateLimit.objects.create(tenant=acme, user="*", window=RateLimit.Window.HOUR,
                             cost=Decimal("2"))  # fmt: skip
    calls(operator, 1, tenant="acme", prefix="a", user="erin")
    assert blocked(guard(operator, tenant="acme", user="erin")) == ("block", "rate_limited")
    assert guard(operator, tenant="acme", user="frank")["decision"] == "allow"


@hot
def test_a_request_rate_limit_counts_the_calls_let_through(operator, acme, globex) -> None:
    RateLimit.objects.create(tenant=acme, window=RateLimit.Window.HOUR, requests=3)
    decisions = [guard(operator, tenant="acme")["decision"] for _ in range(3)]
    assert decisions == ["allow"] * 3
    answer = guard(operator, tenant="acme")
    assert blocked(answer) == ("block", "rate_limited")
    assert 1 <= answer["retry_after"] <= 3600
    # Refused calls are not counted; another tenant has its own room.
    assert guard(operator, tenant="globex")["decision"] == "allow"


# --- Concurrency ----------------------------------------------------------------------


def _pair(client: APIClient, tenant: str, i: int, **fields) -> str:
    answer = guard(client, tenant=tenant, estimated_cost=str(CALL), **fields)
    if answer["decision"] == "allow":
        calls(client, 1, tenant=tenant, prefix=f"pair-{i}", user=fields.get("user", ""),
              reservation_id=answer.get("reservation_id", ""))  # fmt: skip
    return answer["decision"]


@hot
def test_concurrent_calls_pass_an_end_user_budget_by_less_than_one_call(operator, acme) -> None:
    Budget.objects.create(tenant=acme, user="*", period=Budget.Period.MONTH,
                          amount=Decimal("11"), action=Budget.Action.BLOCK)  # fmt: skip
    decisions = run_at_once(50, lambda i: _pair(operator, "acme", i, user="grace"))
    spent = ledger(tenant=acme, user="grace")
    assert decisions.count("allow") == 5  # 4 calls reach 10, the 5th passes 11
    assert Decimal(11) < spent < Decimal(11) + CALL


@hot
def test_concurrent_calls_never_pass_a_request_rate(operator, acme) -> None:
    RateLimit.objects.create(tenant=acme, window=RateLimit.Window.HOUR, requests=10)
    decisions = run_at_once(50, lambda i: _pair(operator, "acme", i))
    assert decisions.count("allow") == 10
    assert ledger(tenant=acme) == 10 * CALL


# --- Losing Redis ---------------------------------------------------------------------


def _capped_client(client: APIClient, slug: str, i: int, call: Decimal) -> None:
    """Ask, make the call if allowed, report it with its reservation; stop after five
    refusals."""
    refused = 0
    for n in range(80):
        answer = guard(client, tenant=slug, estimated_cost=str(call))
        if answer["decision"] != "allow":
            refused += 1
            if refused >= 5:
                return
            continue
        time.sleep(0.002)  # the model call
        # 40,000 input tokens of gpt-4o at $2.50 per 1M: $0.10
        calls(client, 1, tenant=slug, prefix=f"c{i}-{n}", input_tokens=40_000,
              reservation_id=answer["reservation_id"])  # fmt: skip


def _flush_until(done: threading.Event) -> int:
    redis_db = redis.Redis.from_url(settings.FINOPS_GUARD_REDIS_URL)
    rng, flushes = random.Random(11), 0
    while not done.is_set():
        time.sleep(rng.uniform(0.02, 0.06))
        redis_db.flushdb()
        flushes += 1
    return flushes


@hot
def test_a_cap_holds_while_redis_is_flushed_again_and_again(operator) -> None:
    """6 clients per tenant ask the guard and post their calls' events against a $3.00
    cap of $0.10 calls while Redis is emptied every few milliseconds: the calls in
    flight come back from PostgreSQL with each seed, so no cap is passed by more than
    one call."""
    cap, call = Decimal("3"), Decimal("0.1")
    tenants = [TenantFactory(slug=f"flush-{n}", monthly_cap=cap) for n in range(2)]
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as flusher:
        flushes = flusher.submit(_flush_until, done)
        try:
            run_at_once(12, lambda i: _capped_client(operator, tenants[i % 2].slug, i, call))
        finally:
            done.set()
        assert flushes.result() > 5
    for tenant in tenants:
        spent = ledger(tenant=tenant, timestamp__gte=period_start(MONTH, now()))
        assert cap - call <= spent <= cap + call, (tenant.slug, spent)
        # Settled: every reservation was released by its own event.
        guard(operator, tenant=tenant.slug, estimated_cost="0")
        assert counters.reserved_nanos(month_scope(tenant, now()).name) == 0


@hot
def test_a_reservation_is_released_by_its_own_id_only(operator) -> None:
    """Two calls in flight; the event of the second arrives first. Only the second's
    reservation goes, whatever order they were allowed in."""
    tenant = TenantFactory(slug="ordered", monthly_cap=Decimal("100"))
    first = guard(operator, tenant="ordered", estimated_cost="1")
    second = guard(operator, tenant="ordered", estimated_cost="2")
    name = month_scope(tenant, now()).name
    assert counters.reserved_nanos(name) == 3 * 10**9
    at = now()
    calls(operator, 1, tenant="ordered", prefix="second", at=at,
          reservation_id=second["reservation_id"])  # fmt: skip
    assert counters.reserved_nanos(name) == 1 * 10**9
    # The same event again (a retry) settles nothing twice.
    calls(operator, 1, tenant="ordered", prefix="second", at=at,
          reservation_id=second["reservation_id"])  # fmt: skip
    assert counters.reserved_nanos(name) == 1 * 10**9
    redis.Redis.from_url(settings.FINOPS_GUARD_REDIS_URL).flushdb()
    guard(operator, tenant="ordered", estimated_cost="0")  # seeds again
    assert counters.reserved_nanos(name) == 1 * 10**9  # the first is still in flight
    calls(operator, 1, tenant="ordered", prefix="first", reservation_id=first["reservation_id"])
    assert counters.reserved_nanos(name) == 0
    assert counters.counter_value(name) == 2 * CALL


def test_a_reservation_id_on_an_event_must_be_hex(operator) -> None:
    TenantFactory(slug="shape")
    response = post_events(operator, event(tenant="shape", reservation_id="not hex!"))
    assert response.status_code == 400
    assert "reservation_id" in response.json(), response.json()


def test_nothing_is_reserved_without_limits(operator) -> None:
    TenantFactory(slug="free-of-limits")
    assert "reservation_id" not in guard(operator, tenant="free-of-limits", estimated_cost="1")


def test_expired_reservations_are_pruned_by_their_job() -> None:
    from billing.models import GuardReservation
    from billing.tasks import guard_reservations_prune_task

    at = now()
    at_ms = int(at.timestamp() * 1000)
    GuardReservation.objects.bulk_create([
        GuardReservation(reservation="a1", counters=["c1", "c2"], nanos=1, expires_ms=at_ms - 1),
        GuardReservation(reservation="a2", counters=["c1"], nanos=1, expires_ms=at_ms - 1),
        GuardReservation(reservation="b2", counters=["c1"], nanos=1, expires_ms=at_ms + 60_000),
    ])  # fmt: skip
    line = guard_reservations_prune_task(at.isoformat())
    assert line == "deleted 2 expired guard reservation(s)"
    assert list(GuardReservation.objects.values_list("reservation", flat=True)) == ["b2"]


def test_threshold_alerts_of_a_budget_on_each_end_user_name_the_user(operator, acme) -> None:
    from billing.budgets import budgets_evaluate
    from billing.models import Alert

    Budget.objects.create(tenant=acme, user="*", period=Budget.Period.MONTH,
                          amount=Decimal("3"), thresholds=[50, 100])  # fmt: skip
    calls(operator, 1, tenant="acme", prefix="a", user="alice")  # 2.50: 83%
    calls(operator, 2, tenant="acme", prefix="b", user="bob")  # 5.00: 167%
    calls(operator, 2, tenant="globex", prefix="g", user="alice")  # another tenant's alice
    assert budgets_evaluate(now=now()).alerts == 3
    messages = sorted(Alert.objects.values_list("threshold", "message"))
    assert [threshold for threshold, _ in messages] == [50, 50, 100]
    assert sum("for end user alice" in m for _, m in messages) == 1
    assert sum("for end user bob" in m for _, m in messages) == 2
    assert budgets_evaluate(now=now()).alerts == 0  # once per user, threshold and period


def test_a_rate_limit_per_minute_is_checked(operator, acme) -> None:
    RateLimit.objects.create(tenant=acme, window=RateLimit.Window.MINUTE, cost=Decimal("1"))
    assert guard(operator, tenant="acme")["decision"] == "allow"
    calls(operator, 1, tenant="acme", prefix="m")
    answer = guard(operator, tenant="acme")
    if answer["decision"] == "allow":  # the minute turned between the call and the check
        calls(operator, 1, tenant="acme", prefix="m2")
        answer = guard(operator, tenant="acme")
    assert blocked(answer) == ("block", "rate_limited")
    assert 1 <= answer["retry_after"] <= 60
    assert "this minute" in answer["reason"]


@hot
def test_a_token_rate_limit_reserves_no_cost(operator, acme) -> None:
    """Calls in flight reserve cost on cost limits only: a token limit counts the tokens
    of the events that arrived."""
    RateLimit.objects.create(tenant=acme, window=RateLimit.Window.DAY, tokens=1_000_001)
    for _ in range(3):
        assert guard(operator, tenant="acme", estimated_cost="1000")["decision"] == "allow"
    calls(operator, 1, tenant="acme", prefix="t")  # 1,000,000 tokens
    assert guard(operator, tenant="acme")["decision"] == "allow"
    calls(operator, 1, tenant="acme", prefix="u", input_tokens=1)
    assert blocked(guard(operator, tenant="acme")) == ("block", "rate_limited")
