"""The savings ledger on one hand-made day whose every figure is worked out by hand below:
each lever measured with the bill's own price rows, the recommendations ranked by
saving and kept to those that clear their break-even."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from billing.rollups import rollups_update
from console.models import ProvisionedOffer
from console.savings import savings_compute
from finops.models import PriceRate, Tenant
from finops.periods import DAY, period_start
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
M = 1_000_000


def _call(event_id, feature, model, at, *, input_tokens=M, tenant="acme", **fields):
    return event(event_id=event_id, tenant=tenant, feature=feature, model=model,
                 input_tokens=input_tokens, cached_input_tokens=fields.pop("cached", 0),
                 output_tokens=0, prompt_template=None, timestamp=at.isoformat(),
                 **fields)  # fmt: skip


@pytest.fixture
def day(operator, acme):
    """Prices per 1M input tokens: big-1 10 (cached 1, cache write 12.5, batch 50% off),
    small-1 1, peak-1 4 (2 off-peak, 00:00-06:00 UTC), reg-1 on Azure 3 (2 in eu).

    Calls of one day, each 1M input tokens unless said, no output:
    - chat (default model big-1): big-1 on routing tier "strong", escalated, correct
      (10.00); small-1 on "cheap", not escalated, incorrect (1.00).
    - docs: big-1 with 600k cached and 200k written (200k x 10 + 600k x 1 + 200k x 12.5
      = 5.10), not a cache hit; 100k tokens answered by the app's cache (1.00).
    - summaries: 4 calls on small-1 (4.00), prompt hashes p1 p1 p1 p2 (2 repeats).
    - notes: 2 calls on small-1 (2.00), hashes n1 n2 (no repeat); the first reports
      500k of its tokens wasted.
    - nightly (batchable): big-1 standard (10.00) and big-1 batch (5.00).
    - etl (batchable): peak-1 at 12:00 (4.00) and at 02:00, off-peak (2.00).
    - stream (steady): big-1 (10.00); big-1 has an offer of 100.00 a month for 1,000
      tokens a minute.
    - geo (allowed us and eu): reg-1 on Azure in us (3.00).
    Total 57.10.
    """
    ModelPriceFactory(model="big-1", input_per_million=10, output_per_million=20,
                      cached_input_per_million=1, cache_write_per_million="12.5",
                      batch_discount_percent=50)  # fmt: skip
    ModelPriceFactory(model="small-1", input_per_million=1, output_per_million=2)
    peak = ModelPriceFactory(model="peak-1", input_per_million=4, output_per_million=8,
                             off_peak_windows=[{"hours_utc": ["00:00-06:00"]}])  # fmt: skip
    PriceRate.objects.create(price=peak, service_tier="standard", token_kind="input",
                             off_peak=True, per_million=2)  # fmt: skip
    ModelPriceFactory(model="azure/reg-1", provider="azure", input_per_million=3,
                      output_per_million=6)  # fmt: skip
    ModelPriceFactory(model="azure/eu/reg-1", provider="azure", input_per_million=2,
                      output_per_million=4)  # fmt: skip
    start = period_start(DAY, timezone.now()) - timedelta(days=2)
    noon, night = start + timedelta(hours=12), start + timedelta(hours=2)
    calls = [
        _call("c1", "chat", "big-1", noon, routing_tier="strong", escalated=True,
              outcome="correct"),
        _call("c2", "chat", "small-1", noon, routing_tier="cheap", escalated=False,
              outcome="incorrect"),
        _call("d1", "docs", "big-1", noon, cached=600_000, cache_write_tokens=200_000,
              cache_hit=False, prompt_hash="q1"),
        _call("d2", "docs", "big-1", noon, input_tokens=100_000, cache_hit=True,
              prompt_hash="q1"),
        *[_call(f"s{i}", "summaries", "small-1", noon, prompt_hash=h)
          for i, h in enumerate(["p1", "p1", "p1", "p2"])],
        *[_call(f"n{i}", "notes", "small-1", noon, prompt_hash=h, wasted_tokens=w)
          for i, (h, w) in enumerate([("n1", 500_000), ("n2", 0)])],
        _call("b1", "nightly", "big-1", noon),
        _call("b2", "nightly", "big-1", noon, service_tier="batch"),
        _call("e1", "etl", "peak-1", noon),
        _call("e2", "etl", "peak-1", night),
        _call("t1", "stream", "big-1", noon),
        _call("g1", "geo", "reg-1", noon, provider="azure", region="us"),
    ]  # fmt: skip
    response = post_events(operator, {"events": calls})
    assert response.status_code == 202, response.json()
    Feature.objects.filter(key="chat").update(default_model="big-1")
    Feature.objects.filter(key__in=["nightly", "etl"]).update(workload="batchable")
    Feature.objects.filter(key="stream").update(workload="steady")
    Feature.objects.filter(key="geo").update(allowed_regions=["us", "eu"])
    ProvisionedOffer.objects.create(model="big-1", monthly_price=100, tokens_per_minute=1000)
    rollups_update()
    return start, start + timedelta(days=1)


def _json(day):
    start, end = day
    with override_settings(FINOPS_SEMANTIC_CACHE_MONTHLY_COST=Decimal(30)):
        savings = savings_compute(start=start, end=end)
    return savings, {lever["lever"]: lever for lever in savings.as_json()["levers"]}


def test_every_lever_is_measured_with_the_bills_prices(day) -> None:
    savings, levers = _json(day)
    assert savings.cost == Decimal("57.1")
    assert savings.calls == 16

    routing = levers["routing"]
    # chat cost 11.00; both calls on big-1 would cost 20.00: routing saved 9.00.
    assert routing["saved"] == "9.000000"
    assert routing["rows"] == [{"feature": "chat", "default_model": "big-1",
                                "actual": "11.000000", "all_on_default_model": "20.000000",
                                "saved": "9.000000"}]  # fmt: skip
    tiers = {t["routing_tier"]: t for t in routing["routing_tiers"]}
    assert (tiers["strong"]["calls"], tiers["strong"]["escalation_rate"]) == (1, "1.0000")
    assert (tiers["cheap"]["cost"], tiers["cheap"]["escalation_rate"]) == ("1.000000", "0.0000")
    quality = {q["model"]: q for q in routing["quality"]}
    assert quality["big-1"]["cost_per_correct_output"] == "10.000000"
    assert quality["small-1"]["accuracy"] == "0.0000"
    assert quality["small-1"]["cost_per_correct_output"] is None

    cache = levers["provider_cache"]
    # docs on big-1: 1.1M input at 10 = 11.00 without the cache, 6.10 with it.
    assert cache["saved"] == "4.900000"
    assert cache["rows"][0]["hit_rate"] == "0.5455"  # 600k of 1.1M
    assert cache["hit_rate"] == "0.0397"  # 600k of 15.1M input tokens

    app = levers["app_cache"]
    # docs: 1 hit of 2 calls reporting; the miss cost 5.10, so the hit avoided 5.10.
    assert (app["hit_rate"], app["saved"]) == ("0.5000", "5.100000")


def test_a_cache_is_recommended_only_above_its_break_even(day) -> None:
    savings, levers = _json(day)
    rows = {r["feature"]: r for r in levers["semantic_cache"]["rows"]}
    # summaries: 4.00 a day is 120.00 a month; 2 of 4 hashed prompts repeat (50%); the
    # cache's 30.00 a month breaks even at 25%; net 0.5 x 120 - 30 = 30.00.
    assert rows["summaries"] == {
        "feature": "summaries", "expected_hit_rate": "0.5000", "break_even_hit_rate": "0.2500",
        "monthly_cost": "120.000000", "net_monthly_saving": "30.000000", "recommended": True,
    }  # fmt: skip
    # notes: no repeat, 0% against a 50% break-even (30 of 60): not recommended.
    assert rows["notes"]["recommended"] is False
    assert rows["notes"]["net_monthly_saving"] == "-30.000000"
    # docs runs an application cache already (its calls report cache_hit): not a
    # candidate, though its prompts repeat.
    assert "docs" not in rows
    assert levers["semantic_cache"]["quality_caveat"].startswith("A semantic cache")


def test_batch_off_peak_provisioned_and_region(day) -> None:
    savings, levers = _json(day)
    batch = levers["batch"]
    # The batch call saved 10.00 - 5.00; nightly's standard call at batch rates: 5.00 a
    # day, 150.00 a month. etl (peak-1, no batch rate) would save nothing.
    assert batch["saved"] == "5.000000"
    assert batch["potential_monthly_saving"] == "150.000000"
    assert batch["batchable_share"] == "0.2802"  # (10 + 4 + 2) / 57.10 not batched
    assert batch["batched_share"] == "0.0876"  # 5.00 / 57.10

    off_peak = levers["off_peak"]
    # The 02:00 call cost 2.00 where the peak rate is 4.00; the noon call would cost
    # 2.00 off-peak: 2.00 a day, 60.00 a month.
    assert (off_peak["saved"], off_peak["peak_cost"]) == ("2.000000", "4.000000")
    assert off_peak["potential_monthly_saving"] == "60.000000"

    (offer,) = levers["provisioned"]["rows"]
    # stream: 1M tokens in a day is 694.44 a minute, 69% of 1,000; 10.00 a day on demand
    # is 300.00 a month against 100.00: saves 200.00, breaks even at 69.44% x 100 / 300.
    assert offer["utilization"] == "0.6944"
    assert offer["break_even_utilization"] == "0.2315"
    assert (offer["monthly_on_demand"], offer["monthly_saving"]) == ("300.000000", "200.000000")

    region = levers["region"]
    (geo,) = region["rows"]
    # geo in us at 3.00; in eu the row says 2.00: 1.00 a day, 30.00 a month.
    assert (geo["cheapest_region"], geo["monthly_saving"]) == ("eu", "30.000000")
    assert {r["region"]: r["cost"] for r in region["by_region"]} == {
        None: "54.100000", "us": "3.000000"}  # fmt: skip


def test_recommendations_are_ranked_by_measured_saving(day) -> None:
    savings, levers = _json(day)
    # notes: 500k wasted of 2M input tokens at small-1's 1.00: 0.50 a day, 15.00 a month.
    assert levers["prompt"]["rows"] == [{"feature": "notes", "wasted_share": "0.2500",
                                         "wasted_cost": "0.500000",
                                         "monthly_saving": "15.000000"}]  # fmt: skip
    ranked = [(r.lever, r.feature, r.monthly_saving) for r in savings.recommendations]
    assert ranked == [
        ("provisioned", "", Decimal(200)),
        ("batch", "nightly", Decimal(150)),
        ("off_peak", "etl", Decimal(60)),
        ("region", "geo", Decimal(30)),
        ("semantic_cache", "summaries", Decimal(30)),
        ("prompt", "notes", Decimal(15)),
    ]


def test_one_tenants_savings_hold_only_its_own_calls(day, operator) -> None:
    start, end = day
    TenantFactory(slug="globex")
    noon = start + timedelta(hours=12)
    response = post_events(operator, _call("x1", "chat", "small-1", noon, tenant="globex"))
    assert response.status_code == 202
    rollups_update()
    everyone = savings_compute(start=start, end=end, tenant=None)
    assert everyone.cost == Decimal("58.1")
    globex = savings_compute(start=start, end=end, tenant=Tenant.objects.get(slug="globex"))
    assert (globex.cost, globex.calls) == (Decimal(1), 1)
    # globex's one call on small-1 would cost 10.00 on chat's default model.
    assert globex.lever("routing").saved == Decimal(9)


def test_the_savings_api(day, operator, acme_client) -> None:
    start, end = day
    query = f"from={start.isoformat()}&to={end.isoformat()}".replace("+", "%2B")
    answer = operator.get(f"/api/v1/savings?{query}")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["cost"] == "57.100000"
    assert acme_client.get(f"/api/v1/savings?{query}").json()["tenant"] == "acme"
    assert acme_client.get(f"/api/v1/savings?{query}&tenant=globex").status_code == 404
    bad = operator.get("/api/v1/savings?from=2026-01-01T01:00:00Z&to=2026-01-02T00:00:00Z")
    assert bad.status_code == 400 and set(bad.json()) == {"from"}
    bad = operator.get("/api/v1/savings?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
    assert bad.status_code == 400 and set(bad.json()) == {"to"}
    assert set(operator.get(f"/api/v1/savings?{query}&window=7").json()) == {"window"}


def test_groups_with_an_unpriced_call_are_left_out_and_counted(day, operator) -> None:
    start, _ = day
    noon = start + timedelta(hours=12)
    response = post_events(operator, {"events": [
        _call("u1", "notes", "mystery-1", noon), _call("u2", "notes", "mystery-1", noon),
    ]})  # fmt: skip
    assert response.status_code == 202
    rollups_update()
    ProvisionedOffer.objects.create(model="small-1", monthly_price=90, currency="EUR",
                                    tokens_per_minute=1000)  # fmt: skip
    savings, levers = _json(day)
    assert (savings.unpriced_calls, savings.calls_left_out) == (2, 2)
    assert savings.cost == Decimal("57.1")  # every figure as before
    assert savings.as_json()["cost_left_out"] == "0.000000"
    # An offer in euros is not set against costs in dollars.
    assert levers["provisioned"]["offers_in_other_currencies"] == ["small-1"]
