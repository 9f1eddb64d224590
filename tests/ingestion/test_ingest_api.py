from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings

from finops.models import ModelPrice, Tenant
from ingestion.models import Feature, PromptTemplate, UsageEvent
from tests.conftest import event, post_events, recent

pytestmark = pytest.mark.django_db


def test_single_event_is_accepted_with_its_exact_cost(operator, acme) -> None:
    response = post_events(operator, event())

    assert response.status_code == 202
    # 1000 uncached x $2.50 + 200 cached x $1.25 + 300 output x $10, per 1M tokens
    assert response.json() == {
        "status": "accepted",
        "event_id": "evt-1",
        "cost": "0.00575",
        "priced": True,
    }
    stored = UsageEvent.objects.get()
    assert stored.cost == Decimal("0.00575")
    assert stored.price == ModelPrice.objects.get(model="gpt-4o-2024-08-06")
    assert stored.tenant == acme and stored.tenant_tier == "enterprise"


def test_duplicate_event_is_stored_once(operator, acme) -> None:
    first = post_events(operator, event())
    again = post_events(operator, event())

    assert first.json()["status"] == "accepted"
    assert again.status_code == 202
    assert again.json() == {
        "status": "duplicate",
        "event_id": "evt-1",
        "cost": "0.00575",
        "priced": True,
    }
    assert UsageEvent.objects.count() == 1


def test_the_same_instant_in_another_offset_is_the_same_event(operator, acme) -> None:
    at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    now = datetime.now(UTC)
    at = now.replace(microsecond=0) - timedelta(hours=1)
    post_events(operator, event(timestamp=at.isoformat().replace("+00:00", "Z")))
    shifted = at.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    plus_one = (at + timedelta(hours=1)).isoformat().replace("+00:00", "+01:00")
    assert post_events(operator, event(timestamp=shifted)).json()["status"] == "duplicate"
    assert post_events(operator, event(timestamp=plus_one)).json()["status"] == "duplicate"


def test_same_event_id_with_other_content_is_a_conflict(operator, acme) -> None:
    post_events(operator, event())
    response = post_events(operator, event(output_tokens=301))

    assert response.status_code == 409
    assert "event_id" in response.json()
    assert UsageEvent.objects.get().output_tokens == 300


def test_the_same_event_id_may_be_used_by_two_tenants(operator, acme, globex) -> None:
    assert post_events(operator, event(tenant="acme")).json()["status"] == "accepted"
    assert post_events(operator, event(tenant="globex")).json()["status"] == "accepted"
    assert UsageEvent.objects.count() == 2


def test_batch_judges_each_item_alone_and_stores_the_valid_ones(operator, acme) -> None:
    response = post_events(
        operator,
        {
            "events": [
                event(event_id="ok-1"),
                event(event_id="bad-tokens", input_tokens=-5),
                event(event_id="ok-2", model="a-model-nobody-priced"),
                event(
                    event_id="bad-cache",
                    input_tokens=100,
                    cached_input_tokens=80,
                    cache_write_tokens=30,
                ),
                event(event_id="ok-1"),
            ]
        },
    )

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 2)
    by_index = {r["index"]: r for r in body["results"]}
    assert by_index[0] == {
        "index": 0,
        "status": "accepted",
        "event_id": "ok-1",
        "cost": "0.00575",
        "priced": True,
    }
    assert by_index[1]["status"] == "rejected"
    assert by_index[1]["event_id"] == "bad-tokens"
    assert list(by_index[1]["errors"]) == ["input_tokens"]
    assert by_index[2] == {
        "index": 2,
        "status": "accepted",
        "event_id": "ok-2",
        "cost": None,
        "priced": False,
    }
    assert list(by_index[3]["errors"]) == ["cached_input_tokens"]
    assert by_index[4]["status"] == "duplicate"
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"ok-1", "ok-2"}


def test_a_batch_of_valid_events_is_202(operator, acme) -> None:
    events = [event(event_id=f"e-{i}") for i in range(1000)]
    response = post_events(operator, {"events": events})
    assert response.status_code == 202
    assert response.json()["accepted"] == 1000
    assert UsageEvent.objects.count() == 1000


def test_the_same_id_twice_in_one_batch_with_other_content_is_rejected(operator, acme) -> None:
    response = post_events(operator, {"events": [event(), event(output_tokens=1)]})
    assert response.status_code == 207
    second = response.json()["results"][1]
    assert second["status"] == "rejected" and "event_id" in second["errors"]
    assert UsageEvent.objects.get().output_tokens == 300


def test_1001_events_are_refused_whole(operator, acme) -> None:
    events = [event(event_id=f"e-{i}") for i in range(1001)]
    response = post_events(operator, {"events": events})
    assert response.status_code == 400
    assert "events" in response.json()
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    "envelope",
    [{"events": {"a": 1}}, {"events": []}, {"events": [event()], "extra": 1}, [event()], "text"],
)
def test_a_malformed_envelope_is_400_and_stores_nothing(operator, acme, envelope) -> None:
    response = post_events(operator, envelope)
    assert response.status_code == 400
    assert response.json()
    assert not UsageEvent.objects.exists()


def test_a_body_over_5_mib_is_413_and_stores_nothing(operator, acme) -> None:
    padding = "x" * 200
    events = [event(event_id=f"e-{i}", user=padding, session=padding) for i in range(1000)]
    body = json.dumps({"events": events})
    body = body[:-2] + ", " + json.dumps(event(event_id="big", tags={"p": "y" * 256})) + "]}"
    big = body + " " * (6 * 1024 * 1024 - len(body))
    assert len(big) >= 6 * 1024 * 1024
    response = post_events(operator, big)
    assert response.status_code == 413
    assert not UsageEvent.objects.exists()


def test_malformed_json_is_a_clear_400(operator, acme) -> None:
    response = post_events(operator, b'{"event_id": "x", ')
    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["non_field_errors"][0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"model": None}, "model"),
        ({"input_tokens": None}, "input_tokens"),
        ({"output_tokens": "12"}, "output_tokens"),
        ({"timestamp": None}, "timestamp"),
        ({"timestamp": "2026-11-22T10:00:00"}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"reasoning_tokens": 301}, "reasoning_tokens"),
        ({"cached_input_tokens": 1201}, "cached_input_tokens"),
        ({"outcome": "great"}, "outcome"),
        ({"tags": {f"k{i}": "v" for i in range(21)}}, "tags"),
        ({"tags": {"k": 1}}, "tags"),
        ({"retrieval": {"chunks_retrieved": 2, "chunks_used": 3}}, "retrieval.chunks_used"),
        ({"retrieval": {"chunks_retrieved": 2}}, "retrieval.chunks_used"),
        ({"cost_usd": -1}, "cost_usd"),
        ({"input_token": 5}, "input_token"),
        ({"latency_ms": -1}, "latency_ms"),
    ],
)
def test_bad_fields_are_named_in_a_400(operator, acme, change, field) -> None:
    response = post_events(
        operator,
        event(**change)
        if None not in change.values()
        else {k: v for k, v in event().items() if k not in change},
    )
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert not UsageEvent.objects.exists()


def test_names_too_long_for_a_rollup_row_are_refused_not_left_to_stall_the_rollups(
    operator, acme, settings
) -> None:
    # Each within its own limit, but 4-byte characters: 200 + 128 + 128 + 64 + 100 + 64
    # characters take 2,736 bytes, more than PostgreSQL's index holds in one key.
    wide = "\U0001f600"
    names = {"model": wide * 200, "feature": wide * 128, "prompt_template": wide * 128,
             "routing_tier": wide * 64, "provider": wide * 100, "region": wide * 64}  # fmt: skip
    refused = post_events(operator, event(**names))
    assert refused.status_code == 400
    assert "2,000 bytes together" in refused.json()["model"][0], refused.json()
    # The same in ASCII fits (684 bytes), and so does a reported tag within the limit.
    settings.FINOPS_REPORT_TAG_KEY = "team"
    ascii_names = {name: "x" * (len(value) // len(wide)) for name, value in names.items()}
    accepted = post_events(operator, event(event_id="ok", tags={"team": "y" * 200}, **ascii_names))
    assert accepted.status_code == 202, accepted.json()
    tagged = post_events(operator, event(event_id="tag", tags={"team": wide * 250}, **ascii_names))
    # The rollups keep 200 characters of the tag: 800 bytes, with 684 more.
    assert tagged.status_code == 202, tagged.json()
    assert UsageEvent.objects.count() == 2


def test_timestamps_outside_the_window_are_rejected(operator, acme) -> None:
    now = datetime.now(UTC)
    future = post_events(operator, event(timestamp=(now + timedelta(minutes=6)).isoformat()))
    old = post_events(operator, event(timestamp=(now - timedelta(days=36)).isoformat()))
    slightly_ahead = post_events(
        operator, event(event_id="ok", timestamp=(now + timedelta(minutes=4)).isoformat())
    )
    assert future.status_code == 400 and "future" in future.json()["timestamp"][0]
    assert old.status_code == 400 and "backfill" in old.json()["timestamp"][0]
    assert slightly_ahead.status_code == 202


def test_unknown_model_is_stored_unpriced_then_priced_once_a_price_exists(operator, acme) -> None:
    response = post_events(
        operator,
        event(
            model="frontier-9000",
            input_tokens=2_000_000,
            cached_input_tokens=0,
            output_tokens=1_000_000,
        ),
    )
    assert response.json() == {
        "status": "accepted",
        "event_id": "evt-1",
        "cost": None,
        "priced": False,
    }
    from ingestion.services import events_price_unpriced

    assert events_price_unpriced().priced == 0
    price = ModelPrice.objects.create(
        model="frontier-9000", input_per_million=Decimal("4"), output_per_million=Decimal("16")
    )
    result = events_price_unpriced()

    stored = UsageEvent.objects.get()
    assert (result.priced, result.cost) == (1, Decimal("24"))
    assert (stored.cost, stored.price) == (Decimal("24"), price)
    listed = operator.get("/api/v1/events").json()["results"][0]
    assert (listed["cost"], listed["priced"]) == ("24", True)


def test_unknown_tenant_is_created_on_first_sight_and_flagged(operator) -> None:
    response = post_events(operator, event(tenant="newco"))
    assert response.status_code == 202
    tenant = Tenant.objects.get(slug="newco")
    assert tenant.auto_created and tenant.tier == "free"


@override_settings(FINOPS_AUTO_CREATE_TENANTS=False)
def test_unknown_tenant_is_rejected_when_auto_creation_is_off(operator) -> None:
    response = post_events(operator, event(tenant="newco"))
    assert response.status_code == 400
    assert "Unknown tenant" in response.json()["tenant"][0]
    assert not Tenant.objects.filter(slug="newco").exists()


def test_a_suspended_tenant_cannot_post(operator, acme) -> None:
    acme.status = Tenant.Status.SUSPENDED
    acme.save()
    response = post_events(operator, event())
    assert response.status_code == 400 and "suspended" in response.json()["tenant"][0]


def test_an_operator_key_must_name_the_tenant(operator, acme) -> None:
    response = post_events(operator, event(tenant=None))
    assert response.status_code == 400
    assert "tenant" in response.json()


def test_a_tenant_key_posts_for_its_own_tenant(acme_client, acme) -> None:
    response = post_events(acme_client, event(tenant=None))
    assert response.status_code == 202
    assert UsageEvent.objects.get().tenant == acme


def test_a_tenant_key_cannot_post_for_another_tenant(acme_client, acme, globex) -> None:
    single = post_events(acme_client, event(tenant="globex"))
    batch = post_events(
        acme_client,
        {"events": [event(event_id="a", tenant="acme"), event(event_id="b", tenant="globex")]},
    )
    assert single.status_code == 400 and "tenant" in single.json()
    assert batch.status_code == 207
    assert batch.json()["results"][1]["errors"].keys() == {"tenant"}
    assert list(UsageEvent.objects.values_list("tenant__slug", "event_id")) == [("acme", "a")]


def test_features_and_prompt_templates_are_created_on_first_sight(operator, acme) -> None:
    post_events(operator, event())
    feature = Feature.objects.get(key="document_summarization")
    prompt = PromptTemplate.objects.get(key="summarize-v3")
    assert feature.auto_created and prompt.feature == feature
    stored = UsageEvent.objects.get()
    assert (stored.feature, stored.prompt_template) == (feature, prompt)


def test_batch_calls_are_priced_at_the_batch_price(operator, acme) -> None:
    response = post_events(
        operator,
        event(batch=True, input_tokens=1_000_000, cached_input_tokens=0, output_tokens=1_000_000),
    )
    # gpt-4o-2024-08-06 batch: $1.25 input, $5 output per 1M
    assert response.json()["cost"] == "6.25"


def test_reasoning_and_cache_writes_are_priced(operator, acme) -> None:
    response = post_events(
        operator,
        event(
            model="claude-sonnet-4-5",
            input_tokens=10_000,
            cached_input_tokens=4_000,
            cache_write_tokens=2_000,
            output_tokens=1_000,
            reasoning_tokens=400,
        ),
    )
    # 4000 x 3 + 4000 x 0.30 + 2000 x 3.75 + 1000 x 15 (reasoning at output price), per 1M
    assert response.json()["cost"] == str(
        (Decimal(4000 * 3) + Decimal("1200") + Decimal("7500") + Decimal(15000)) / 1_000_000
    )


def test_ingestion_does_not_need_the_broker(operator, acme) -> None:
    from config.celery import app

    broker = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = post_events(operator, event(model="not-yet-priced"))
    finally:
        app.conf.broker_url = broker
    assert response.status_code == 202
    assert UsageEvent.objects.count() == 1


def test_all_posted_fields_round_trip(operator, acme) -> None:
    full = event(
        provider="openai",
        region="eu-west-1",
        user="u-1",
        session="s-1",
        routing_tier="premium",
        latency_ms=812,
        cache_hit=True,
        escalated=False,
        batch=False,
        retrieval={"chunks_retrieved": 8, "chunks_used": 3},
        reranker_changed_order=True,
        outcome="correct",
        prompt_hash="abc123",
        tags={"env": "prod"},
        cost_usd="0.0061",
        grounding_tokens=12,
        wasted_tokens=7,
        cache_write_tokens=100,
        reasoning_tokens=0,
        timestamp=recent(5),
    )
    post_events(operator, full)
    listed = operator.get("/api/v1/events").json()["results"][0]
    for name, value in full.items():
        if name == "timestamp":
            assert datetime.fromisoformat(listed[name]) == datetime.fromisoformat(value)
        else:
            assert listed[name] == value, name
    assert listed["priced"] is True and listed["cost"]


def test_a_nul_character_is_a_field_error_and_the_rest_of_the_batch_is_stored(
    operator, acme
) -> None:
    response = post_events(operator, {"events": [
        event(event_id="ok"), event(event_id="bad\u0000id"),
        event(event_id="bad-tag", tags={"k": "v\u0000"}),
    ]})  # fmt: skip
    assert response.status_code == 207
    results = response.json()["results"]
    assert list(results[1]["errors"]) == ["event_id"]
    assert list(results[2]["errors"]) == ["tags"]
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["ok"]


def test_a_suspended_tenants_own_key_cannot_post(acme_client, acme) -> None:
    acme.status = Tenant.Status.SUSPENDED
    acme.save()
    response = post_events(acme_client, event(tenant=None))
    assert response.status_code == 400 and "suspended" in response.json()["tenant"][0]
    assert not UsageEvent.objects.exists()


def test_a_retry_with_tags_in_another_order_is_a_duplicate(operator, acme) -> None:
    post_events(operator, event(tags={"a": "1", "b": "2"}))
    again = post_events(operator, event(tags={"b": "2", "a": "1"}))
    assert again.status_code == 202 and again.json()["status"] == "duplicate"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"input_tokens": 10**10 + 1}, "input_tokens"),
        (
            {"retrieval": {"chunks_retrieved": 2**31, "chunks_used": 1}},
            "retrieval.chunks_retrieved",
        ),
    ],
)
def test_counts_beyond_any_real_call_are_refused(operator, acme, change, field) -> None:
    response = post_events(operator, event(**change))
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"events": ' + "[" * 50_000 + "]" * 50_000 + "}", "non_field_errors"),
        ('{"events": [' + "[" * 50_000 + "]" * 50_000 + "]}", "non_field_errors"),
    ],
)
def test_deeply_nested_json_is_a_400_not_a_500(operator, acme, body, field) -> None:
    response = post_events(operator, body)
    assert response.status_code == 400
    assert response.json()[field] == ["Malformed JSON: nested too deeply."]
    assert not UsageEvent.objects.exists()
