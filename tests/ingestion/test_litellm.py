"""LiteLLM intake, driven by litellm itself (mock responses) and its GenericAPILogger."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal

import pytest

from finops.services import apikey_create
from ingestion.models import UsageEvent
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


# litellm would fetch its model map from the internet when imported; the copy it ships
# serves (and the machine may be offline).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")


def run_litellm(url: str, key: str, log_format: str, calls: list[dict]) -> None:
    from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger

    async def main() -> None:
        logger = GenericAPILogger(endpoint=f"{url}/api/v1/integrations/litellm",
                                  headers={"Authorization": f"Bearer {key}"},
                                  log_format=log_format)  # fmt: skip
        litellm.callbacks = [logger]
        try:
            for call in calls:
                await litellm.acompletion(messages=[{"role": "user", "content": "Summarize."}],
                                          mock_response="A short summary.", **call)  # fmt: skip
            for _ in range(50):  # the success callbacks run as tasks
                if len(logger.log_queue) >= len(calls):
                    break
                await asyncio.sleep(0.05)
            await logger.async_send_batch()
        finally:
            litellm.callbacks = []
            # The logger's pooled connection would keep a live server thread, and its
            # database connection, open past the test; litellm caches the client.
            await logger.async_httpx_client.close()
            litellm.in_memory_llm_clients_cache.flush_cache()

    asyncio.run(main())


@pytest.mark.parametrize("log_format", ["json_array", "ndjson"])
def test_litellm_calls_arrive_priced_for_the_tagged_tenant(live_server, acme, log_format) -> None:
    _, key = apikey_create(tenant=None, scopes=["ingest"], name="litellm")
    calls = [
        {"model": "gpt-4o-2024-08-06", "user": "u-7",
         "metadata": {"tags": ["tenant:acme", "feature:chat_assistant", "prompt:chat-v2"]}},
        {"model": "anthropic/claude-3-5-sonnet-20241022",
         "metadata": {"tags": ["tenant:acme", "feature:summarize"]}},
    ]  # fmt: skip
    run_litellm(live_server.url, key, log_format, calls)
    events = {e.model: e for e in UsageEvent.objects.select_related("feature", "tenant")}
    assert set(events) == {"gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022"}
    gpt = events["gpt-4o-2024-08-06"]
    assert (gpt.tenant.slug, gpt.feature.key, gpt.prompt_template.key) == (
        "acme", "chat_assistant", "chat-v2")  # fmt: skip
    assert gpt.input_tokens > 0 and gpt.output_tokens > 0
    expected = (
        Decimal(gpt.input_tokens) * Decimal("2.5") + Decimal(gpt.output_tokens) * 10
    ) / 10**6
    assert gpt.cost == expected
    assert gpt.provider == "openai" and gpt.client_cost_usd is not None
    # LiteLLM's retry of the same batch stores nothing twice.
    run_again = UsageEvent.objects.count()
    assert run_again == 2


def _payload(**fields) -> dict:
    if "endTime" in fields and "startTime" not in fields:
        fields["startTime"] = fields["endTime"] - 1.25
    base = {
        "id": "chatcmpl-1", "status": "success", "model": "gpt-4o", "custom_llm_provider": "openai",
        "prompt_tokens": 1200, "completion_tokens": 300, "startTime": 1795000000.0,
        "endTime": 1795000001.25, "end_user": "u-1", "response_cost": 0.00575,
        "request_tags": ["tenant:acme", "feature:search"],
        "metadata": {"user_api_key_team_id": None},
        "response": {"model": "gpt-4o-2024-08-06",
                     "usage": {"prompt_tokens": 1200, "completion_tokens": 300,
                               "prompt_tokens_details": {"cached_tokens": 200}}},
    }  # fmt: skip
    base.update(fields)
    return base


def test_partial_problems_answer_207_and_keep_the_good_payloads(operator, acme, settings) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC).timestamp()
    body = [
        _payload(endTime=now),
        _payload(id="chatcmpl-2", endTime=now, request_tags=[]),  # no tenant
        _payload(
            id="chatcmpl-3", endTime=now, status="failure", prompt_tokens=0, completion_tokens=0
        ),  # fmt: skip
        _payload(
            id="chatcmpl-4",
            endTime=now,
            request_tags=["feature:search"],
            metadata={"user_api_key_team_id": "acme"},
        ),  # fmt: skip
    ]
    response = operator.post("/api/v1/integrations/litellm", json.dumps(body),
                             content_type="application/json")  # fmt: skip
    assert response.status_code == 207
    data = response.json()
    assert [r["status"] for r in data["results"]] == ["accepted", "rejected", "skipped",
                                                      "accepted"]  # fmt: skip
    assert "tenant" in data["results"][1]["errors"]
    event = UsageEvent.objects.get(event_id="chatcmpl-1")
    assert (event.cached_input_tokens, event.cost) == (200, Decimal("0.00575"))
    assert event.latency_ms == 1250 and event.user == "u-1"
    assert UsageEvent.objects.get(event_id="chatcmpl-4").tenant == acme
    again = operator.post("/api/v1/integrations/litellm", json.dumps(body[:1]),
                          content_type="application/json")  # fmt: skip
    assert again.status_code == 202 and again.json()["duplicates"] == 1


def test_single_and_ndjson_bodies_and_bad_ones(operator, acme) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC).timestamp()
    single = operator.post("/api/v1/integrations/litellm", json.dumps(_payload(endTime=now)),
                           content_type="application/json")  # fmt: skip
    assert single.status_code == 202 and single.json()["accepted"] == 1
    ndjson = "\n".join(json.dumps(_payload(id=f"n-{i}", endTime=now)) for i in range(3))
    response = operator.post("/api/v1/integrations/litellm", ndjson,
                             content_type="application/json")  # fmt: skip
    assert response.json()["accepted"] == 3
    assert operator.post("/api/v1/integrations/litellm", "not json",
                         content_type="application/json").status_code == 400  # fmt: skip


def test_a_tenant_key_cannot_post_litellm_events_for_another_tenant(make_client, acme) -> None:
    from datetime import UTC, datetime

    TenantFactory(slug="globex")
    client = make_client(acme, ["ingest"])
    body = _payload(endTime=datetime.now(UTC).timestamp(), request_tags=["tenant:globex"])
    response = client.post("/api/v1/integrations/litellm", json.dumps([body]),
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 207
    assert not UsageEvent.objects.exists()


def _post(client, body: str | bytes):
    return client.post("/api/v1/integrations/litellm", body, content_type="application/json")


def _now() -> float:
    from datetime import UTC, datetime

    return datetime.now(UTC).timestamp()


# What LiteLLM 1.106.2 logs for an Anthropic call with 5m and 1h cache writes on the
# priority tier: `response.usage` as its AnthropicConfig.calculate_usage builds it.
ANTHROPIC_USAGE = {
    "prompt_tokens": 13050, "completion_tokens": 400, "total_tokens": 13450,
    "prompt_tokens_details": {
        "cached_tokens": 10000, "text_tokens": 50, "cache_creation_tokens": 3000,
        "cache_write_tokens": 3000,
        "cache_creation_token_details": {"ephemeral_5m_input_tokens": 1000,
                                         "ephemeral_1h_input_tokens": 2000},
    },
    "completion_tokens_details": {"reasoning_tokens": 0, "text_tokens": 400},
    "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 10000,
    "service_tier": "priority",
}  # fmt: skip


def test_cache_writes_their_1h_part_tiers_and_batches_are_stored(operator, acme) -> None:
    now = _now()
    body = [
        _payload(id="msg_01", endTime=now, model="claude-sonnet-4-5",
                 custom_llm_provider="anthropic", prompt_tokens=13050, completion_tokens=400,
                 response={"model": "claude-sonnet-4-5", "usage": ANTHROPIC_USAGE}),
        _payload(id="chatcmpl-flex", endTime=now, cost_breakdown={"service_tier": "flex"},
                 response={"model": "gpt-4o-2024-08-06", "service_tier": "flex",
                           "usage": {"prompt_tokens": 1200, "completion_tokens": 300,
                                     "prompt_tokens_details": {"cached_tokens": 200,
                                                               "cache_write_tokens": 500}}}),
        _payload(id="batch_abc", endTime=now, call_type="aretrieve_batch", model="",
                 hidden_params={"batch_models": ["gpt-4o-2024-08-06"]},
                 response={"id": "batch_abc", "object": "batch", "status": "completed",
                           "usage": {"prompt_tokens": 1200, "completion_tokens": 300}}),
    ]  # fmt: skip
    response = _post(operator, json.dumps(body))
    assert response.status_code == 202, response.json()
    fields = ("model", "input_tokens", "cached_input_tokens", "cache_write_tokens",
              "cache_write_1h_tokens", "service_tier", "batch")  # fmt: skip
    stored = {e["event_id"]: tuple(e[f] for f in fields)
              for e in UsageEvent.objects.values("event_id", *fields)}  # fmt: skip
    assert stored == {
        "msg_01": ("claude-sonnet-4-5", 13050, 10000, 3000, 2000, "priority", False),
        "chatcmpl-flex": ("gpt-4o-2024-08-06", 1200, 200, 500, 0, "flex", False),
        "batch_abc": ("gpt-4o-2024-08-06", 1200, 0, 0, 0, "batch", True),
    }


@pytest.mark.parametrize(
    ("literal", "field"),
    [("1.5", "prompt_tokens"), ("-3", "prompt_tokens"), ("NaN", "prompt_tokens"),
     ("Infinity", "completion_tokens"), ("true", "completion_tokens"),
     ('"1200"', "prompt_tokens")],
)  # fmt: skip
def test_a_bad_count_rejects_its_payload_with_a_field_error_and_keeps_the_rest(
    operator, acme, literal, field
) -> None:
    now = _now()
    good = json.dumps(_payload(id="good", endTime=now))
    bad = json.dumps(_payload(id="bad", endTime=now, **{field: 0})).replace(
        f'"{field}": 0', f'"{field}": {literal}'
    )
    response = _post(operator, f"[{bad}, {good}]")
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert list(results[0]["errors"]) == [field] and results[0]["event_id"] == "bad"
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["good"]


def test_no_body_gives_a_5xx(operator, acme, settings) -> None:
    now = _now()
    good = json.dumps(_payload(id="good", endTime=now))
    deep = "[" * 100_000 + "]" * 100_000
    response = _post(operator, f"[{good}, {deep}]")
    assert response.status_code == 207
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]
    assert _post(operator, "[" * 100_000).status_code == 400
    odd = [
        _payload(id="tags", endTime=now, request_tags="tenant:acme"),
        _payload(id="meta-tags", endTime=now, metadata={"tags": 5}),
        _payload(id="nan-time", endTime=float("nan"), startTime=now),
        _payload(id="far-time", endTime=1e300, startTime=now),
        _payload(id="text-time", endTime="yesterday", startTime=now),
        _payload(id="nan-cost", endTime=now, response_cost=float("nan")),
    ]
    response = _post(operator, json.dumps(odd))  # Python writes NaN as a bare literal
    assert response.status_code == 207
    results = {r["index"]: r for r in response.json()["results"]}
    assert [results[i]["status"] for i in range(6)] == ["rejected"] * 5 + ["accepted"], results
    assert list(results[0]["errors"]) == ["request_tags"]
    assert list(results[1]["errors"]) == ["metadata.tags"]
    assert list(results[2]["errors"]) == ["endTime"] == list(results[3]["errors"])
    assert "timestamp" in results[4]["errors"]
    assert UsageEvent.objects.get(event_id="nan-cost").client_cost_usd is None
    settings.FINOPS_LITELLM_MAX_BODY_BYTES = 10
    too_large = _post(operator, json.dumps([good]))
    assert too_large.status_code == 413 and "10 bytes" in too_large.json()["detail"]
