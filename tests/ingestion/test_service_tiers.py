"""Events priced as their vendor bills them: service tiers, long prompts, 1-hour cache
writes and rerank queries, through `POST /api/v1/events`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finops.models import ModelPrice
from ingestion.models import UsageEvent
from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db


def _post(client, **fields):
    return post_events(client, event(**fields))


def test_a_batch_call_without_batch_prices_in_the_map_bills_at_the_vendors_50_percent(
    operator, acme
) -> None:
    # Mistral's map entry has no _batches prices; Mistral's Batch API is 50% off.
    # (1000 uncached x 0.5 + 200 cached x 0.05 + 300 output x 1.5) / 1M = 0.00096; half:
    response = _post(operator, model="mistral/mistral-large-latest", service_tier="batch")
    assert response.status_code == 202, response.content
    assert response.json()["cost"] == "0.00048"
    stored = UsageEvent.objects.get(event_id="evt-1")
    assert (stored.service_tier, stored.batch) == ("batch", True)


def test_batch_true_is_the_batch_tier_and_the_same_content(operator, acme) -> None:
    first = _post(operator, model="gpt-4o-2024-08-06", batch=True)
    again = _post(operator, model="gpt-4o-2024-08-06", service_tier="batch")
    assert first.status_code == 202 and again.status_code == 202
    assert again.json()["status"] == "duplicate"
    # gpt-4o-2024-08-06 batch: 1.25 input, 5 output; cached at 50% of 1.25.
    # 1000 x 1.25 + 200 x 0.625 + 300 x 5 = 2875 per 1M
    assert first.json()["cost"] == "0.002875"


def test_priority_and_flex_bill_their_own_rates(operator, acme) -> None:
    priority = _post(operator, event_id="p", model="gpt-5", service_tier="priority")
    flex = _post(operator, event_id="f", model="gpt-5", service_tier="flex")
    # gpt-5 priority 2.5 / 0.25 cached / 20; flex 0.625 / 0.0625 / 5.
    assert priority.json()["cost"] == "0.00855"  # 1000 x 2.5 + 200 x 0.25 + 300 x 20
    assert flex.json()["cost"] == "0.0021375"  # 1000 x 0.625 + 200 x 0.0625 + 300 x 5


def test_a_prompt_above_200k_bills_every_token_at_the_long_context_rate(operator, acme) -> None:
    # gemini-2.5-pro: 1.25 / 10 up to 200k prompt tokens, 2.50 / 15 above.
    below = _post(operator, event_id="short", model="gemini-2.5-pro", input_tokens=200_000,
                  cached_input_tokens=0, output_tokens=1000)  # fmt: skip
    above = _post(operator, event_id="long", model="gemini-2.5-pro", input_tokens=261_000,
                  cached_input_tokens=0, output_tokens=1000)  # fmt: skip
    assert below.json()["cost"] == "0.26"  # 200k x 1.25 + 1000 x 10
    assert above.json()["cost"] == "0.6675"  # 261k x 2.5 + 1000 x 15
    stored = UsageEvent.objects.get(event_id="long")
    assert (stored.above_tokens, stored.off_peak) == (200_000, False)
    assert UsageEvent.objects.get(event_id="short").above_tokens == 0
    # Batch above 200k: half of the long-context rate (the vendor's rule).
    batch = _post(operator, event_id="long-batch", model="gemini-2.5-pro", input_tokens=261_000,
                  cached_input_tokens=0, output_tokens=1000, service_tier="batch")  # fmt: skip
    assert batch.json()["cost"] == "0.33375"


def test_one_hour_cache_writes_bill_at_their_own_rate(operator, acme) -> None:
    # claude-sonnet-4-5: input 3, 5-minute write 3.75, 1-hour write 6, read 0.3, output 15.
    response = _post(operator, model="claude-sonnet-4-5", input_tokens=10_000,
                     cached_input_tokens=2000, cache_write_tokens=5000,
                     cache_write_1h_tokens=3000, output_tokens=100)  # fmt: skip
    # 3000 x 3 + 2000 x 0.3 + 2000 x 3.75 + 3000 x 6 + 100 x 15 = 36600 per 1M
    assert response.json()["cost"] == "0.0366"
    stored = UsageEvent.objects.get(event_id="evt-1")
    assert (stored.cache_write_tokens, stored.cache_write_1h_tokens) == (5000, 3000)


def test_rerank_queries_bill_per_query_and_a_chat_row_cannot_price_them(operator, acme) -> None:
    ModelPrice.objects.create(model="cohere/rerank-x", provider="cohere", mode="rerank",
                              input_per_million=0, output_per_million=0,
                              per_query=Decimal("0.002"))  # fmt: skip
    rerank = _post(operator, event_id="r", model="cohere/rerank-x", input_tokens=0,
                   cached_input_tokens=0, output_tokens=0, queries=3)  # fmt: skip
    assert rerank.json()["cost"] == "0.006" and rerank.json()["priced"] is True
    # A chat model has no per-query price: the event waits, unpriced, never billed as 0.
    chat = _post(operator, event_id="c", model="gpt-4o-2024-08-06", queries=2)
    assert chat.json()["priced"] is False and chat.json()["cost"] is None
    assert UsageEvent.objects.get(event_id="c").queries == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cache_write_tokens": 10, "cache_write_1h_tokens": 11}, "cache_write_1h_tokens"),
        ({"batch": True, "service_tier": "priority"}, "service_tier"),
        ({"service_tier": "turbo"}, "service_tier"),
        ({"cache_write_1h_tokens": -1}, "cache_write_1h_tokens"),
        ({"queries": 1.5}, "queries"),
        ({"queries": "2"}, "queries"),
    ],
)
def test_bad_tier_fields_are_field_errors(operator, acme, fields, field) -> None:
    response = _post(operator, **fields)
    assert response.status_code == 400
    assert field in response.json()
    assert not UsageEvent.objects.exists()


def test_the_event_list_shows_the_tier_fields(operator, acme) -> None:
    _post(operator, model="claude-sonnet-4-5", service_tier="batch", cache_write_tokens=100,
          cache_write_1h_tokens=40)  # fmt: skip
    (item,) = operator.get("/api/v1/events").json()["results"]
    assert (item["service_tier"], item["batch"]) == ("batch", True)
    assert (item["cache_write_1h_tokens"], item["queries"]) == (40, 0)


def test_a_call_in_a_region_with_its_own_price_bills_at_it(operator, acme) -> None:
    # Azure's EU data zone, as the price map states it: azure/eu/gpt-4o is 2.75 input,
    # 1.375 cached, 11 output per 1M; elsewhere gpt-4o is 2.5, 1.25, 10.
    ModelPrice.objects.create(
        model="azure/eu/gpt-4o", provider="azure", input_per_million="2.75",
        cached_input_per_million="1.375", output_per_million=11,
    )  # fmt: skip
    eu = _post(operator, event_id="eu", model="gpt-4o", provider="azure", region="eu")
    anywhere = _post(operator, event_id="any", model="gpt-4o", provider="azure")
    # 1000 uncached x 2.75 + 200 cached x 1.375 + 300 x 11 = 6325 per 1M
    assert eu.json()["cost"] == "0.006325"
    # 1000 x 2.5 + 200 x 1.25 + 300 x 10 = 5750 per 1M
    assert anywhere.json()["cost"] == "0.00575"
    assert UsageEvent.objects.get(event_id="eu").price.model == "azure/eu/gpt-4o"


def test_events_of_a_region_are_priced_once_the_regions_own_row_exists(operator, acme) -> None:
    from ingestion.services import events_price_unpriced

    # A model only a region's row prices: stored unpriced until that row exists.
    waiting = _post(operator, event_id="w", model="zone-only-1", provider="azure", region="eu")
    assert waiting.json()["cost"] is None
    ModelPrice.objects.create(model="azure/eu/zone-only-1", provider="azure",
                              input_per_million=1, output_per_million=2)  # fmt: skip
    assert events_price_unpriced().priced == 1
    # 1000 uncached + 200 cached (billed as input: no cached rate) x 1 + 300 x 2 per 1M
    assert UsageEvent.objects.get(event_id="w").cost == Decimal("0.0018")
