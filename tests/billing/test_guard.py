"""The guard: decisions, their rules, and its counters against the ledger.

These run on whatever the suite runs on: the embedded SQLite (the guard reads the
ledger) or PostgreSQL with Redis (hot counters, as in production). Tests that need the
hot counters say so and are skipped without them.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from billing.guard import counters, guard_decide, scopes, views
from billing.guard import redis as guard_redis
from billing.guard.ledger import ledger_spend
from billing.guard.views import GUARD_MAX_BODY
from billing.models import Budget, FeatureCap, KillSwitch
from billing.rollups import rollups_update
from finops.fields import ExactSum
from finops.models import Tenant
from finops.periods import HOUR, MONTH, period_end, period_start
from ingestion.models import Feature, UsageEvent
from ingestion.services import events_price_unpriced
from tests.conftest import event, post_events, run_at_once
from tests.factories import FeatureFactory, TenantFactory

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("fresh_guard"),
]

# Each call: 1M uncached input tokens of gpt-4o-2024-08-06 at $2.50 per 1M.
CALL = Decimal("2.5")
MODEL = "gpt-4o-2024-08-06"
FALLBACK = "gpt-4o-mini-2024-07-18"


hot = pytest.mark.skipif(
    not (settings.FINOPS_GUARD_REDIS_URL and connection.vendor == "postgresql"),
    reason="needs PostgreSQL and Redis (hot guard counters)",
)


def now() -> datetime:
    return datetime.now(UTC)


def calls(client, count: int, *, tenant: str, prefix: str, at: datetime | None = None,
          **fields) -> None:  # fmt: skip
    at = at or now()
    fields = {"input_tokens": 1_000_000, "model": MODEL, **fields}
    events = [
        event(event_id=f"{prefix}-{i}", tenant=tenant, cached_input_tokens=0, output_tokens=0,
              timestamp=at.isoformat(), **fields)
        for i in range(count)
    ]  # fmt: skip
    response = post_events(client, {"events": events} if count > 1 else events[0])
    assert response.status_code == 202, response.content


def guard(client, **body):
    body.setdefault("model", MODEL)
    body.setdefault("feature", "document_summarization")
    response = client.post("/api/v1/guard", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def ledger(**filters) -> Decimal:
    return UsageEvent.objects.filter(**filters).aggregate(s=ExactSum("cost"))["s"] or Decimal(0)


def month_scope(tenant: Tenant, at: datetime) -> scopes.Scope:
    start = period_start(MONTH, at)
    return scopes.calendar_scope(
        period=MONTH, start=start, end=period_end(MONTH, start), tenant_id=tenant.id
    )


# --- Decisions ------------------------------------------------------------------------


def test_a_call_within_every_limit_is_allowed(operator) -> None:
    TenantFactory(slug="small", monthly_cap=Decimal("100"))
    calls(operator, 2, tenant="small", prefix="a")
    assert guard(operator, tenant="small") == {
        "decision": "allow",
        "model": MODEL,
        "reason": "Within every cap, budget and policy.",
        "error_type": None,
    }


def test_a_tenant_at_its_monthly_cap_is_blocked_until_override_or_next_month(operator) -> None:
    tenant = TenantFactory(slug="capped", monthly_cap=Decimal("5"))
    calls(operator, 1, tenant="capped", prefix="a")
    assert guard(operator, tenant="capped")["decision"] == "allow"
    calls(operator, 1, tenant="capped", prefix="b")
    answer = guard(operator, tenant="capped")
    assert (answer["decision"], answer["error_type"]) == ("block", "tenant_cap_reached")
    assert "reached its monthly cap of 5.00 USD" in answer["reason"]
    assert "5.00 USD spent" in answer["reason"]
    # Another tenant is not affected.
    TenantFactory(slug="other", monthly_cap=Decimal("5"))
    assert guard(operator, tenant="other")["decision"] == "allow"
    # A new month starts from nothing: this month's spend does not carry over.
    next_month = period_end(MONTH, period_start(MONTH, now())) + timedelta(minutes=1)
    tenant.refresh_from_db()
    assert guard_decide(tenant=tenant, feature_key="document_summarization", model=MODEL,
                        now=next_month).decision == "allow"  # fmt: skip
    # An override in the admin lifts the cap until it ends.
    Tenant.objects.filter(id=tenant.id).update(cap_override_until=now() + timedelta(hours=1))
    assert guard(operator, tenant="capped")["decision"] == "allow"


def test_a_feature_cap_blocks_that_feature_only(operator) -> None:
    tenant = TenantFactory(slug="capped")
    calls(operator, 2, tenant="capped", prefix="a", feature="chat")
    FeatureCap.objects.create(tenant=tenant, feature=Feature.objects.get(key="chat"),
                              monthly_cap=Decimal("5"))  # fmt: skip
    answer = guard(operator, tenant="capped", feature="chat")
    assert (answer["decision"], answer["error_type"]) == ("block", "feature_cap_reached")
    assert "on chat" in answer["reason"]
    assert guard(operator, tenant="capped", feature="search")["decision"] == "allow"


def test_budgets_act_as_configured_at_100_percent(operator) -> None:
    tenant = TenantFactory(slug="budgeted")
    FeatureFactory(key="document_summarization", fallback_model=FALLBACK)
    calls(operator, 2, tenant="budgeted", prefix="a")
    budget = Budget.objects.create(tenant=tenant, period="day", amount=Decimal("5"),
                                   action=Budget.Action.NOTIFY)  # fmt: skip
    assert guard(operator, tenant="budgeted")["decision"] == "allow"
    Budget.objects.filter(id=budget.id).update(action=Budget.Action.DOWNGRADE)
    answer = guard(operator, tenant="budgeted")
    assert answer["decision"] == "downgrade"
    assert (answer["model"], answer["error_type"]) == (FALLBACK, "budget_exceeded")
    Budget.objects.filter(id=budget.id).update(action=Budget.Action.BLOCK)
    answer = guard(operator, tenant="budgeted")
    assert (answer["decision"], answer["error_type"]) == ("block", "budget_exceeded")
    # A budget on another model or another tenant does not apply.
    Budget.objects.filter(id=budget.id).update(model=FALLBACK)
    assert guard(operator, tenant="budgeted")["decision"] == "allow"


def test_a_budget_on_a_prompt_template_applies_when_the_call_names_it(operator) -> None:
    TenantFactory(slug="budgeted")
    calls(operator, 1, tenant="budgeted", prefix="a", prompt_template="summarize-v3")
    from ingestion.models import PromptTemplate

    Budget.objects.create(
        prompt_template=PromptTemplate.objects.get(key="summarize-v3"),
        period="month", amount=Decimal("2"), action=Budget.Action.BLOCK,
    )  # fmt: skip
    assert guard(operator, tenant="budgeted")["decision"] == "allow"
    answer = guard(operator, tenant="budgeted", prompt_template="summarize-v3")
    assert (answer["decision"], answer["error_type"]) == ("block", "budget_exceeded")


def test_a_free_tenant_over_its_ltv_is_downgraded_to_the_fallback(operator) -> None:
    TenantFactory(slug="freebie", tier=Tenant.Tier.FREE, predicted_ltv=Decimal("4"),
                  signup_at=now() - timedelta(days=2))  # fmt: skip
    FeatureFactory(key="document_summarization", fallback_model=FALLBACK)
    calls(operator, 1, tenant="freebie", prefix="a")
    assert guard(operator, tenant="freebie")["decision"] == "allow"
    calls(operator, 1, tenant="freebie", prefix="b")
    answer = guard(operator, tenant="freebie")
    assert answer == {
        "decision": "downgrade",
        "model": FALLBACK,
        "reason": "freebie (free tier) cost 5.00 USD in its first 30 days, more than its "
        f"predicted lifetime value of 4.00 USD. Use {FALLBACK}.",
        "error_type": "ltv_throttled",
    }


def test_spend_before_signup_or_after_the_free_window_does_not_count_for_ltv(operator) -> None:
    signup = now() - timedelta(days=31)
    TenantFactory(slug="old", tier=Tenant.Tier.FREE, predicted_ltv=Decimal("4"),
                  signup_at=signup)  # fmt: skip
    calls(operator, 3, tenant="old", prefix="late", at=now() - timedelta(hours=1))
    calls(operator, 1, tenant="old", prefix="early", at=signup + timedelta(days=1))
    assert guard(operator, tenant="old")["decision"] == "allow"


def test_feature_lifecycle_and_kill_switch(operator) -> None:
    TenantFactory(slug="acme2")
    feature = FeatureFactory(key="document_summarization", fallback_model=FALLBACK)
    KillSwitch.objects.create(feature=feature, tenant=None, automatic=False, tripped_at=now(),
                              reason="Set by staff.")  # fmt: skip
    answer = guard(operator, tenant="acme2")
    assert (answer["decision"], answer["model"], answer["error_type"]) == (
        "downgrade", FALLBACK, "spend_spike",
    )  # fmt: skip
    Feature.objects.filter(id=feature.id).update(status=Feature.Status.THROTTLED)
    answer = guard(operator, tenant="acme2")
    assert (answer["decision"], answer["error_type"]) == ("downgrade", "feature_sunset")
    Feature.objects.filter(id=feature.id).update(status=Feature.Status.SUNSET)
    answer = guard(operator, tenant="acme2")
    assert (answer["decision"], answer["error_type"]) == ("block", "feature_sunset")


def test_a_downgrade_without_a_fallback_keeps_the_model_and_says_so(operator) -> None:
    feature = FeatureFactory(key="document_summarization")
    KillSwitch.objects.create(feature=feature, tenant=None, automatic=False, tripped_at=now(),
                              reason="Set by staff.")  # fmt: skip
    TenantFactory(slug="acme2")
    answer = guard(operator, tenant="acme2")
    assert (answer["decision"], answer["model"]) == ("downgrade", MODEL)
    assert "No fallback model is set for document_summarization" in answer["reason"]


def test_block_rules_win_over_downgrades(operator) -> None:
    TenantFactory(slug="both", tier=Tenant.Tier.FREE, predicted_ltv=Decimal("1"),
                  monthly_cap=Decimal("2"))  # fmt: skip
    calls(operator, 1, tenant="both", prefix="a")
    assert guard(operator, tenant="both")["error_type"] == "tenant_cap_reached"


def test_a_suspended_tenant_is_blocked(operator) -> None:
    TenantFactory(slug="gone", status=Tenant.Status.SUSPENDED)
    counted = REGISTRY.get_sample_value(
        "finops_guard_decisions_total", {"error_type": "tenant_suspended"}
    )
    answer = guard(operator, tenant="gone")
    assert (answer["decision"], answer["error_type"]) == ("block", "tenant_suspended")
    after = REGISTRY.get_sample_value(
        "finops_guard_decisions_total", {"error_type": "tenant_suspended"}
    )
    assert after == (counted or 0) + 1


def test_a_late_price_reaches_the_guard(operator) -> None:
    from tests.factories import ModelPriceFactory

    TenantFactory(slug="late", monthly_cap=Decimal("10"))
    calls(operator, 4, tenant="late", prefix="a", model="brand-new-model")
    assert guard(operator, tenant="late", model="brand-new-model")["decision"] == "allow"
    ModelPriceFactory(model="brand-new-model", provider="", input_per_million=Decimal("3"))
    assert events_price_unpriced().priced == 4
    answer = guard(operator, tenant="late", model="brand-new-model")
    assert (answer["decision"], answer["error_type"]) == ("block", "tenant_cap_reached")
    assert "12.00 USD spent" in answer["reason"]


# --- The endpoint ---------------------------------------------------------------------


def test_tenant_keys_guard_their_own_tenant_only(acme_client, globex) -> None:
    assert guard(acme_client)["decision"] == "allow"
    assert guard(acme_client, tenant="acme")["decision"] == "allow"
    response = acme_client.post("/api/v1/guard", {"tenant": "globex", "model": MODEL},
                                format="json")  # fmt: skip
    assert response.status_code == 404


def test_bad_requests_get_field_errors(operator, make_client, acme) -> None:
    response = operator.post("/api/v1/guard", {"tenant": "acme"}, format="json")
    assert response.status_code == 400
    assert "model" in response.json()
    response = operator.post("/api/v1/guard", {"model": MODEL}, format="json")
    assert (response.status_code, list(response.json())) == (400, ["tenant"])
    response = operator.post("/api/v1/guard", {"tenant": "nobody", "model": MODEL},
                             format="json")  # fmt: skip
    assert response.status_code == 404
    response = operator.post("/api/v1/guard", {"tenant": "acme", "model": MODEL,
                             "estimated_cost": "-1"}, format="json")  # fmt: skip
    assert (response.status_code, list(response.json())) == (400, ["estimated_cost"])
    response = operator.post("/api/v1/guard", {"tenant": "acme", "model": MODEL, "colour": 1},
                             format="json")  # fmt: skip
    assert (response.status_code, list(response.json())) == (400, ["colour"])
    for bad in ("abc", "NaN", "1e40", "0.0000000000000000001"):
        response = operator.post("/api/v1/guard", {"tenant": "acme", "model": MODEL,
                                 "estimated_cost": bad}, format="json")  # fmt: skip
        assert (response.status_code, list(response.json())) == (400, ["estimated_cost"]), bad
    response = operator.post("/api/v1/guard", b"{", content_type="application/json")
    assert response.status_code == 400 and "Malformed JSON" in str(response.json())
    reader = make_client(acme, ["read"])
    assert reader.post("/api/v1/guard", {"model": MODEL}, format="json").status_code == 403
    assert operator.generic("POST", "/api/v1/guard").status_code in (400, 415)


def test_credentials_and_scope_are_refused_as_every_api_endpoint_refuses_them(
    operator, make_client, acme
) -> None:
    """401 and 403 with DRF's bodies and `WWW-Authenticate` header (the budgets endpoint,
    a DRF view, is the reference)."""
    cases = {
        "no credentials": {},
        "another scheme": {"HTTP_AUTHORIZATION": f"Token {operator.key}"},
        "unknown key": {"HTTP_AUTHORIZATION": "Bearer fo_nope_nope"},
        "malformed key": {"HTTP_AUTHORIZATION": "Bearer nope"},
    }
    anonymous = APIClient()
    for name, headers in cases.items():
        guarded = anonymous.post("/api/v1/guard", {"model": MODEL}, format="json", **headers)
        reference = anonymous.get("/api/v1/budgets", **headers)
        assert guarded.status_code == reference.status_code == 401, name
        assert guarded.json() == reference.json(), name
        assert guarded["WWW-Authenticate"] == reference["WWW-Authenticate"] == "Bearer", name
    reader = make_client(acme, ["read"])
    response = reader.post("/api/v1/guard", {"model": MODEL}, format="json")
    assert (response.status_code, response.json()) == (
        403, {"detail": "This API key lacks the 'ingest' scope."}
    )  # fmt: skip


def test_only_post_is_allowed_and_bodies_are_bounded(acme_client) -> None:
    response = acme_client.get("/api/v1/guard")
    assert (response.status_code, response["Allow"]) == (405, "POST")
    assert response.json() == {"detail": 'Method "GET" not allowed.'}
    response = acme_client.post("/api/v1/guard", b" " * (GUARD_MAX_BODY + 1),
                                content_type="application/json")  # fmt: skip
    assert (response.status_code, response.json()) == (413, {"detail": "Request body too large."})


def test_the_guard_passes_through_the_middleware_like_every_view(acme_client) -> None:
    response = acme_client.post("/api/v1/guard", {"model": MODEL}, format="json",
                                HTTP_ACCEPT="text/html")  # fmt: skip
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    response = acme_client.post("/api/v1/guard", {"model": MODEL}, format="json",
                                HTTP_HOST="evil.example")  # fmt: skip
    assert response.status_code == 400  # CommonMiddleware checks the Host header


def test_an_error_while_deciding_is_a_json_500(acme_client, monkeypatch) -> None:
    def broken(**kwargs: object) -> None:
        raise RuntimeError("the guard broke")

    monkeypatch.setattr(views, "guard_decide", broken)
    acme_client.raise_request_exception = False
    response = acme_client.post("/api/v1/guard", {"model": MODEL}, format="json")
    assert (response.status_code, response.json()) == (500, {"detail": "Internal server error."})


NASTY_BODIES = [
    b"", b"null", b"[]", b'"x"', b"1", b"{}", b"{", b"\xff\xfe", b'{"model": null}',
    b'{"model": ""}', b'{"model": 1}', b'{"model": ["x"]}', b'{"model": {"a": 1}}',
    b'{"model": "\\ud800"}', b'{"model": "a\\u0000b"}', b'{"model": "' + b"m" * 201 + b'"}',
    b'{"model": "m", "tenant": ""}', b'{"model": "m", "tenant": "\\u0000"}',
    b'{"model": "m", "feature": "\\u0000"}', b'{"model": "m", "estimated_cost": 1e400}',
    b'{"model": "m", "estimated_cost": "sNaN"}', b'{"model": "m", "estimated_cost": "-0"}',
    b'{"model": "m", "estimated_cost": "1e999999999"}', b'{"model": "m", "estimated_cost": true}',
    b'{"model": "m", "model": "n"}', b'{"model": "m", "user": 5}', b'[' * 5000,
    b'{"model": "\xf0\x9f\x98\x80", "feature": "\xf0\x9f\x98\x80"}',
]  # fmt: skip


@pytest.mark.parametrize("body", NASTY_BODIES)
def test_no_body_makes_the_guard_fail(operator, acme_client, body) -> None:
    for client in (operator, acme_client):
        response = client.post("/api/v1/guard", body, content_type="application/json")
        assert response.status_code in (200, 400, 404), (body, response.content)
        if response.status_code == 400:
            assert all(isinstance(v, list) for v in response.json().values())


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    ["model", "tenant", "feature", "user", "prompt_template", "estimated_cost", "x"]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=8,
    )
)
def test_no_json_makes_the_guard_fail(acme_client, data) -> None:
    body = json.dumps(data, allow_nan=True)
    response = acme_client.post("/api/v1/guard", body, content_type="application/json")
    assert response.status_code in (200, 400, 404), (body, response.content)


def test_the_openapi_schema_describes_the_guard(client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/guard"]["post"]
    components = schema["components"]["schemas"]

    def resolve(ref: dict) -> dict:
        return components[ref["$ref"].rsplit("/", 1)[1]]

    assert operation["security"] == [{"ApiKey": []}]
    body = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["model"]
    assert set(body["properties"]) == {"tenant", "feature", "model", "user",
                                       "prompt_template", "estimated_cost"}  # fmt: skip
    assert body["additionalProperties"] is False
    answer = resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(answer["required"]) == {"decision", "model", "reason", "error_type"}
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "413"}


# --- Hot counters (PostgreSQL and Redis) ----------------------------------------------


def _pair(client, tenant: str, i: int) -> str:
    """A guarded call: asked, made if allowed, its event carrying its reservation."""
    answer = guard(client, tenant=tenant)
    if answer["decision"] == "allow":
        reservation = answer.get("reservation_id", "")
        calls(client, 1, tenant=tenant, prefix=f"pair-{i}", reservation_id=reservation)
    return answer["decision"]


@hot
def test_concurrent_calls_pass_a_cap_by_at_most_one_call(operator) -> None:
    """50 guard + ingest pairs at once, $1 under the cap: LiteLLM's classic leak."""
    tenant = TenantFactory(slug="racing")
    # History: the guard expects a call of this feature and model to cost what these did.
    calls(operator, 4, tenant="racing", prefix="history")
    rollups_update()
    cap = ledger(tenant=tenant, timestamp__gte=period_start(MONTH, now())) + Decimal(1)
    Tenant.objects.filter(id=tenant.id).update(monthly_cap=cap)
    decisions = run_at_once(50, lambda i: _pair(operator, "racing", i))
    spent = ledger(tenant=tenant, timestamp__gte=period_start(MONTH, now()))
    assert decisions.count("allow") == 1  # $1 under the cap fits one $2.50 call
    assert cap < spent <= cap + CALL
    answer = guard(operator, tenant="racing")
    assert (answer["decision"], answer["error_type"]) == ("block", "tenant_cap_reached")


@hot
def test_concurrent_small_calls_stop_at_the_cap(operator) -> None:
    tenant = TenantFactory(slug="racing")
    cap = Decimal("10")
    Tenant.objects.filter(id=tenant.id).update(monthly_cap=cap)

    def pair(i: int) -> str:
        answer = guard(operator, tenant="racing", estimated_cost="0.75")
        if answer["decision"] == "allow":
            calls(operator, 1, tenant="racing", prefix=f"p-{i}", input_tokens=300_000,
                  reservation_id=answer["reservation_id"])  # fmt: skip
        return answer["decision"]

    decisions = run_at_once(50, pair)
    spent = ledger(tenant=tenant)
    # 0.75 per call: 14 fit under 10 (10.50 with the 14th), the 15th is refused.
    assert decisions.count("allow") == 14
    assert spent == Decimal("10.5")
    assert counters.counter_value(month_scope(tenant, now()).name) == spent
    assert counters.reserved_nanos(month_scope(tenant, now()).name) == 0


@hot
def test_counters_reseed_exactly_after_redis_is_flushed_mid_run(operator) -> None:
    """Four writers post while a guard keeps asking and Redis is flushed under it."""
    tenant = TenantFactory(slug="flushed", monthly_cap=Decimal("1000000"))
    writers_done = threading.Barrier(4, action=lambda: stopped.set())
    stopped = threading.Event()
    redis_db = redis.Redis.from_url(settings.FINOPS_GUARD_REDIS_URL)
    flushes = []

    def work(i: int) -> None:
        if i == 0:  # the guard, seeding again after each flush
            rng = random.Random(7)
            while not stopped.is_set():
                guard(operator, tenant="flushed")
                if rng.random() < 0.3:
                    redis_db.flushdb()
                    flushes.append(1)
            return
        for batch in range(15):
            events = [
                event(event_id=f"w{i}-{batch}-{j}", tenant="flushed", model=MODEL,
                      input_tokens=1000 + 37 * j, cached_input_tokens=j, output_tokens=11 * j)
                for j in range(1 + batch % 4)
            ]  # fmt: skip
            assert post_events(operator, {"events": events}).status_code == 202
            if i == 1 and batch % 5 == 0:
                rollups_update()  # the watermark moves under the seeds too
        writers_done.wait()

    run_at_once(5, work)
    assert flushes
    guard(operator, tenant="flushed")
    name = month_scope(tenant, now()).name
    in_ledger = ledger(tenant=tenant, timestamp__gte=period_start(MONTH, now()))
    assert in_ledger > 0
    assert counters.counter_value(name) == in_ledger


@hot
def test_an_hour_budget_rolls_over_without_losing_or_zeroing_spend(operator) -> None:
    tenant = TenantFactory(slug="hourly")
    Budget.objects.create(tenant=tenant, period=HOUR, amount=Decimal("100000"),
                          action=Budget.Action.BLOCK)  # fmt: skip
    this_hour = period_start(HOUR, now())
    last_hour = this_hour - timedelta(hours=1)
    tenant_row = Tenant.objects.get(id=tenant.id)

    def work(i: int) -> None:
        for n in range(12):
            at = (last_hour if (i + n) % 2 else this_hour) + timedelta(minutes=n)
            if at > now():
                at = this_hour
            calls(operator, 1 + n % 2, tenant="hourly", prefix=f"h{i}-{n}", at=at)
            # The guard asks about both hours while traffic crosses them.
            guard_decide(tenant=tenant_row, feature_key="document_summarization",
                         model=MODEL, now=at + timedelta(seconds=1))  # fmt: skip

    run_at_once(6, work)

    def counter(start: datetime) -> Decimal | None:
        scope = scopes.calendar_scope(
            period=HOUR, start=start, end=start + timedelta(hours=1), tenant_id=tenant.id
        )
        return counters.counter_value(scope.name)  # fmt: skip

    for start in (last_hour, this_hour):
        in_ledger = ledger(tenant=tenant, timestamp__gte=start,
                           timestamp__lt=start + timedelta(hours=1))  # fmt: skip
        assert in_ledger > 0
        assert counter(start) == in_ledger


@hot
def test_the_guard_answers_from_the_ledger_when_redis_is_down(operator, settings) -> None:
    TenantFactory(slug="capped", monthly_cap=Decimal("5"))
    calls(operator, 2, tenant="capped", prefix="a")
    settings.FINOPS_GUARD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    answer = guard(operator, tenant="capped")
    assert (answer["decision"], answer["error_type"]) == ("block", "tenant_cap_reached")
    # Ingestion goes on without Redis; the guard still counts it.
    TenantFactory(slug="room", monthly_cap=Decimal("7"))
    calls(operator, 2, tenant="room", prefix="b")
    assert guard(operator, tenant="room")["decision"] == "allow"
    calls(operator, 1, tenant="room", prefix="c")
    assert guard(operator, tenant="room")["decision"] == "block"


@hot
def test_the_check_survives_its_connection_closed_and_its_script_lost(operator) -> None:
    """The check runs on a connection the guard holds: one the server closed is made
    again, and a script the server lost is loaded again, without falling back."""
    tenant = TenantFactory(slug="steady", monthly_cap=Decimal("100"))
    scope = month_scope(tenant, now())
    assert guard(operator, tenant="steady", estimated_cost="1")["decision"] == "allow"
    assert counters.reserved_nanos(scope.name) == 10**9
    admin = redis.Redis.from_url(settings.FINOPS_GUARD_REDIS_URL)
    me, db = admin.client_id(), admin.connection_pool.connection_kwargs.get("db", 0)
    guard_clients = [
        c["id"] for c in admin.client_list() if c["db"] == str(db) and c["id"] != str(me)
    ]
    assert guard_clients  # the check's own connection among them
    for client_id in guard_clients:
        admin.client_kill_filter(_id=client_id)
    assert guard(operator, tenant="steady", estimated_cost="1")["decision"] == "allow"
    admin.script_flush()
    assert guard(operator, tenant="steady", estimated_cost="1")["decision"] == "allow"
    assert guard_redis.available()  # Redis was never taken for down
    assert counters.reserved_nanos(scope.name) == 3 * 10**9  # three reservations, none twice


@hot
def test_a_reservation_expires_when_its_event_never_comes(operator, settings) -> None:
    tenant = TenantFactory(slug="ghost", monthly_cap=Decimal("1"))
    settings.FINOPS_GUARD_RESERVATION_TTL = 1
    # Two calls of 0.60 in flight: the second passes the cap by less than one call.
    assert guard(operator, tenant="ghost", estimated_cost="0.6")["decision"] == "allow"
    assert guard(operator, tenant="ghost", estimated_cost="0.6")["decision"] == "allow"
    answer = guard(operator, tenant="ghost", estimated_cost="0.6")
    assert answer["decision"] == "block"
    assert "1.20 USD spent or in flight" in answer["reason"]
    import time

    time.sleep(1.2)
    assert guard(operator, tenant="ghost", estimated_cost="0.6")["decision"] == "allow"
    assert counters.counter_value(month_scope(tenant, now()).name) == 0


def test_ledger_spend_matches_the_events_before_and_after_rollups(operator) -> None:
    tenant = TenantFactory(slug="mixed")
    calls(operator, 3, tenant="mixed", prefix="a")
    rollups_update()
    calls(operator, 2, tenant="mixed", prefix="b", model="brand-new-model")
    from tests.factories import ModelPriceFactory

    ModelPriceFactory(model="brand-new-model", provider="", input_per_million=Decimal("3"))
    events_price_unpriced()
    calls(operator, 1, tenant="mixed", prefix="c")
    scope = month_scope(tenant, now())
    expected = ledger(tenant=tenant, timestamp__gte=scope.start)
    assert ledger_spend(scope)[0] == expected == Decimal("16")
    rollups_update()
    assert ledger_spend(scope)[0] == expected
    assert UsageEvent.objects.aggregate(n=Sum("input_tokens"))["n"] == 6_000_000
