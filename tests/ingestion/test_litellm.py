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
    if "endTime" in fields:
        fields.setdefault("startTime", fields["endTime"] - 1.25)
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
