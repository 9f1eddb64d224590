"""Each predictive metric on a hand-made set of events whose answers are worked out by
hand: prices of $1/$2 (big-1) and $0.10/$0.20 (small-1) per million input/output tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.rollups import rollups_update
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DAY = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
AT = (DAY + timedelta(hours=10)).isoformat()
M = 1_000_000


def _event(event_id: str, **fields) -> dict:
    return event(**{"event_id": event_id, "timestamp": AT, "prompt_template": None,
                    "cached_input_tokens": 0} | fields)  # fmt: skip


@pytest.fixture
def ledger(operator, acme, globex) -> None:
    ModelPriceFactory(model="big-1", input_per_million=1, output_per_million=2)
    ModelPriceFactory(model="small-1", input_per_million="0.1", output_per_million="0.2")
    events = [
        # The day before: the previous window of a one-day window.
        _event("e0", tenant="acme", feature="chat", model="small-1", input_tokens=M,
               output_tokens=0, session="s9", outcome="correct",
               timestamp=(DAY - timedelta(hours=14)).isoformat()),
        _event("e1", tenant="acme", feature="extract", model="big-1", routing_tier="premium",
               input_tokens=M, output_tokens=900_000,  # $2.80
               retrieval={"chunks_retrieved": 10, "chunks_used": 4},
               reranker_changed_order=True, outcome="correct", session="s1", prompt_hash="h1"),
        _event("e2", tenant="acme", feature="extract", model="small-1", routing_tier="cheap",
               input_tokens=M, output_tokens=M,  # $0.30
               retrieval={"chunks_retrieved": 10, "chunks_used": 8},
               reranker_changed_order=False, outcome="incorrect", session="s1",
               prompt_hash="h1"),
        _event("e3", tenant="acme", feature="chat", model="big-1", routing_tier="cheap",
               input_tokens=2 * M, output_tokens=0,  # $2.00
               reranker_changed_order=False, outcome="correct", session="s2", prompt_hash="h2"),
        _event("e4", tenant="acme", feature="chat", model="big-1",
               input_tokens=M, output_tokens=500_000, prompt_hash="h1"),  # $2.00
        _event("e5", tenant="globex", feature="chat", model="small-1", routing_tier="cheap",
               input_tokens=M, output_tokens=0, session="s1", prompt_hash="h1"),  # $0.10
    ]  # fmt: skip
    response = post_events(operator, {"events": events})
    assert response.status_code == 202, response.json()
    Feature.objects.filter(key="extract").update(task_type="extraction")
    Feature.objects.filter(key="chat").update(task_type="chat")
    rollups_update()


def _metrics(client, **params) -> dict[str, dict]:
    query = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()} | params
    response = client.get("/api/v1/metrics", query)
    assert response.status_code == 200, response.json()
    return {m["name"]: m for m in response.json()["results"]}


def test_every_metric_over_all_tenants(operator, ledger) -> None:
    m = _metrics(operator)

    assert (m["retrieval_hit_rate"]["value"], m["retrieval_hit_rate"]["status"]) == (
        "0.6000", "healthy")  # fmt: skip  # 12 of 20 chunks used
    assert m["retrieval_hit_rate"]["threshold"] == "0.55"
    assert (m["reranker_utilization"]["value"], m["reranker_utilization"]["status"]) == (
        "0.3333", "healthy")  # fmt: skip  # 1 of 3 reranked calls reordered

    routing = m["routing_cheap_share"]
    assert (routing["value"], routing["status"]) == ("0.7500", "healthy")  # 3 of 4 routed
    assert [(b["routing_tier"], b["model"], b["calls"], b["cost"], b["cost_share"])
            for b in routing["breakdown"]] == [
        ("cheap", "big-1", 2 - 1, "2.000000", "0.3846"),
        ("cheap", "small-1", 2, "0.400000", "0.0769"),
        ("premium", "big-1", 1, "2.800000", "0.5385"),
    ]  # fmt: skip

    amplification = m["token_amplification"]
    assert amplification["value"] == "0.4000"  # 2.4M output / 6M input
    assert amplification["status"] == "warning"
    assert {b["task_type"]: (b["value"], b["status"]) for b in amplification["breakdown"]} == {
        "extraction": ("0.9500", "warning"), "chat": ("0.1250", "healthy")}  # fmt: skip
    assert "extraction calls write 0.9500 output tokens per input token" in (
        amplification["message"])  # fmt: skip

    # acme repeats h1 twice that day; globex's h1 is its own first.
    dedup = m["cache_dedup_opportunity"]
    assert (dedup["value"], dedup["status"]) == ("0.4000", "warning")

    # $5.20 of calls in sessions; sessions: acme s1, s2 and globex s1. The day before,
    # one $0.10 session: warning above $0.125.
    session = m["cost_per_session"]
    assert (session["value"], session["previous"], session["threshold"], session["status"]) == (
        "1.733333", "0.100000", "0.125000", "warning")  # fmt: skip
    correct = m["cost_per_correct_output"]
    assert (correct["value"], correct["status"]) == ("2.550000", "warning")  # $5.10 / 2

    concentration = m["feature_cost_concentration"]
    assert (concentration["value"], concentration["status"]) == ("0.5694", "warning")  # 4.1/7.2
    assert concentration["message"] == "chat takes 57% of the cost"


def test_metrics_of_one_tenant_and_one_feature(operator, acme_client, ledger) -> None:
    acme = _metrics(acme_client)
    assert acme["cost_per_session"]["value"] == "2.550000"  # $5.10 over s1, s2
    assert acme["cache_dedup_opportunity"]["value"] == "0.5000"  # 2 of 4

    extract = _metrics(operator, tenant="acme", feature="extract")
    assert extract["retrieval_hit_rate"]["value"] == "0.6000"
    assert extract["routing_cheap_share"]["value"] == "0.5000"
    assert extract["cost_per_correct_output"]["value"] == "3.100000"  # $3.10 / 1


def test_a_window_without_data_says_so(operator, ledger) -> None:
    m = _metrics(operator, **{"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"})
    assert {v["status"] for v in m.values()} == {"no_data"}
    assert {v["value"] for v in m.values()} == {None}


def test_a_window_of_hours_reads_the_hourly_rollups(operator, ledger) -> None:
    m = _metrics(operator, **{"from": (DAY + timedelta(hours=10)).isoformat(),
                              "to": (DAY + timedelta(hours=11)).isoformat()})  # fmt: skip
    assert m["feature_cost_concentration"]["value"] == "0.5694"
    m = _metrics(operator, **{"from": (DAY + timedelta(hours=11)).isoformat(),
                              "to": (DAY + timedelta(days=2, hours=11)).isoformat()})  # fmt: skip
    assert m["feature_cost_concentration"]["status"] == "no_data"


def test_bad_queries_get_field_errors(operator, ledger) -> None:
    response = operator.get("/api/v1/metrics", {"from": "2026-01-01T00:30:00Z", "to": "x"})
    assert response.status_code == 400
    body = response.json()
    assert "hour boundary" in body["from"][0]
    assert "to" in body
    response = operator.get("/api/v1/metrics", {"from": "2026-01-02T00:00:00Z",
                                                "to": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert response.json() == {"to": ["Must be after 'from'."]}


def test_a_tenant_key_cannot_read_another_tenants_metrics(acme_client, ledger) -> None:
    query = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    assert acme_client.get("/api/v1/metrics", query | {"tenant": "globex"}).status_code == 404
    assert acme_client.get("/api/v1/projection", {"tenant": "globex"}).status_code == 404


def test_thresholds_are_settings(operator, ledger, settings) -> None:
    settings.FINOPS_METRIC_THRESHOLDS = {"retrieval_hit_rate": "0.7"}
    settings.FINOPS_CHEAP_ROUTING_TIERS = ["cheap", "premium"]
    m = _metrics(operator)
    assert (m["retrieval_hit_rate"]["threshold"], m["retrieval_hit_rate"]["status"]) == (
        "0.7", "warning")  # fmt: skip
    assert m["routing_cheap_share"]["value"] == "1.0000"


def test_amounts_are_exact_decimals(operator, ledger) -> None:
    m = _metrics(operator)
    total = sum(Decimal(b["cost"]) for b in m["feature_cost_concentration"]["breakdown"])
    assert total == Decimal("7.2")


def test_with_a_feature_filter_concentration_is_the_features_share_of_all_cost(
    operator, acme_client, ledger
) -> None:
    # All tenants: extract $3.10 (e1 $2.80 + e2 $0.30) of $7.20 = 0.4306, under 0.55.
    extract = _metrics(operator, feature="extract")["feature_cost_concentration"]
    assert (extract["value"], extract["status"]) == ("0.4306", "healthy")
    assert extract["message"] == "extract takes 43% of the cost"
    assert extract["breakdown"] == [{"feature": "extract", "cost": "3.100000", "share": "0.4306"}]
    # chat $4.10 (e3, e4, e5) of $7.20, as without the filter: 0.5694, a warning.
    chat = _metrics(operator, feature="chat")["feature_cost_concentration"]
    assert (chat["value"], chat["status"]) == ("0.5694", "warning")
    # acme alone: extract $3.10 of acme's $7.10 (without globex's $0.10 chat) = 0.4366.
    own = _metrics(acme_client, feature="extract")["feature_cost_concentration"]
    assert (own["value"], own["status"]) == ("0.4366", "healthy")
    # The other metrics still read the feature alone.
    assert _metrics(operator, feature="extract")["retrieval_hit_rate"]["value"] == "0.6000"
    # A feature without cost in the window has nothing to measure.
    none = _metrics(operator, feature="nothing")["feature_cost_concentration"]
    assert (none["value"], none["status"]) == (None, "no_data")


def test_metrics_read_one_slice_of_the_usage(operator, acme_client, ledger) -> None:
    # On the cheap routing tier: e2 extract $0.30, e3 chat $2.00, e5 (globex) chat $0.10.
    cheap = _metrics(operator, routing_tier="cheap")
    assert cheap["routing_cheap_share"]["value"] == "1.0000"
    assert cheap["feature_cost_concentration"]["value"] == "0.8750"  # chat 2.10 of 2.40
    # The pro tier is globex alone: e5, $0.10 in session s1.
    pro = _metrics(operator, tenant_tier="pro")
    assert pro["cost_per_session"]["value"] == "0.100000"
    assert _metrics(operator, region="eu")["feature_cost_concentration"]["status"] == "no_data"
    assert _metrics(acme_client, region="")["cost_per_session"]["value"] == "2.550000"

    query = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    for client, bad, field in ((operator, {"service_tier": "cheapest"}, "service_tier"),
                               (operator, {"tenant": "acme", "tenant_tier": "pro"}, "tenant_tier"),
                               (acme_client, {"tenant_tier": "pro"}, "tenant_tier"),
                               (operator, {"regoin": "eu"}, "regoin")):  # fmt: skip
        response = client.get("/api/v1/metrics", query | bad)
        assert response.status_code == 400 and set(response.json()) == {field}, response.json()
